# GPU image: CUDA PyTorch, flash-attention 2, DeepSpeed, and this project with every extra.
#   docker build -t llava-ov-encoder .
#   docker run --gpus all -v /data:/data -it llava-ov-encoder bash scripts/run_tests.sh
# Build arguments pick the CUDA wheel index of PyTorch; the base image must carry the matching CUDA toolkit
# (flash-attn compiles against it when no prebuilt wheel fits).
FROM nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG FLASH_ATTN_VERSION=2.8.3
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/venv PATH=/opt/venv/bin:$PATH MAX_JOBS=8

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git ninja-build ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv $VENV

WORKDIR /workspace/llava-ov-encoder
# The same pin as on CPU machines: nothing may replace this torch with another build.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
 && echo "torch==${TORCH_VERSION}" > /opt/torch-constraint.txt
ENV PIP_CONSTRAINT=/opt/torch-constraint.txt
RUN pip install packaging wheel setuptools psutil \
 && pip install "flash-attn==${FLASH_ATTN_VERSION}" --no-build-isolation

COPY . .
RUN pip install -e ".[train,eval,demo,dev]" \
 && (pip uninstall -y torchvision || true)
