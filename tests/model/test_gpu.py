"""What only a CUDA GPU can show: flash-attention's varlen kernel in the encoder and bf16 generation.

Marked `gpu`: deselected by default (pyproject `addopts = -m 'not gpu and not slow'`), run on a GPU machine with
`pytest -m gpu` (the Docker image has flash-attn). Without CUDA or flash-attn these tests fail, they do not skip:
selecting them is the claim that the machine has both.
"""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config

from llava.model import LlavaOVConfig, LlavaOVForConditionalGeneration, OneVisionEncoderModel
from llava.model.onevision_encoder.presets import onevision_encoder_tiny

pytestmark = pytest.mark.gpu

DEVICE = "cuda"


def _require_cuda() -> None:
    assert torch.cuda.is_available(), "the gpu tests need a CUDA device (run them with -m gpu on a GPU machine)"


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_flash_attention_varlen_encoder_equals_sdpa_per_item():
    """Items of different sizes packed into one flash-attention varlen call == each item alone under sdpa."""
    _require_cuda()
    import flash_attn  # noqa: F401  (a missing install is a failure here, not a skip)

    torch.manual_seed(0)
    # head_dim 64 like -large; bf16 is what flash-attention runs in.
    model = OneVisionEncoderModel(onevision_encoder_tiny()).to(DEVICE, torch.bfloat16).eval()
    items = [_randn(3, 42, 56, seed=1), _randn(3, 3, 28, 28, seed=2), _randn(3, 2, 14, 70, seed=3)]
    items = [item.to(DEVICE, torch.bfloat16) for item in items]
    with torch.no_grad():
        model.set_attn_implementation("flash_attention_2")
        packed = model(items)
        model.set_attn_implementation("sdpa")
        singles = [model(item[None]).last_hidden_state for item in items]
    lengths = [single.shape[1] for single in singles]
    assert packed.cu_seqlens.tolist() == [0, 12, 24, 34] and lengths == [12, 12, 10]
    for chunk, single in zip(packed.last_hidden_state.split(lengths, dim=1), singles, strict=True):
        # bf16 kernels accumulate in different orders: a few bf16 ulps at activations of order 1.
        torch.testing.assert_close(chunk.float(), single.float(), atol=3e-2, rtol=3e-2)


def _tiny_llava_ov(seed: int = 0) -> LlavaOVForConditionalGeneration:
    torch.manual_seed(seed)
    config = LlavaOVConfig(
        vision_config=onevision_encoder_tiny(),
        text_config=Qwen3Config(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, tie_word_embeddings=True,
        ),
        image_token_id=5,
    )  # fmt: skip
    model = LlavaOVForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Decisive logits (a random tiny model has near-ties everywhere, which no dtype comparison can judge).
        model.lm_head.weight.mul_(8.0)
    return model


def test_bf16_generation_equals_fp32_greedy():
    """Greedy generation of a tiny LLaVA-OV with an image in bf16 on CUDA picks the fp32 tokens wherever the fp32
    choice is not a near-tie (top-1 minus top-2 logit above what bf16 rounding can move)."""
    _require_cuda()
    model = _tiny_llava_ov().to(DEVICE)
    image = _randn(3, 28, 28, seed=4).to(DEVICE)
    prompt = [1, 2, 3] + [5] * 4 + [7, 8, 9]  # text, 4 placeholders (2 x 2 patches of a 28 px image), text
    input_ids = torch.tensor([prompt], device=DEVICE)
    settings = {"max_new_tokens": 12, "do_sample": False, "suppress_tokens": [5], "min_new_tokens": 12}
    with torch.no_grad():
        reference = model.generate(
            input_ids=input_ids, pixel_values=[image], output_scores=True, return_dict_in_generate=True, **settings
        )
        model.to(torch.bfloat16)
        ours = model.generate(input_ids=input_ids, pixel_values=[image.to(torch.bfloat16)], **settings)
    scores = torch.stack(reference.scores, dim=1)[0].float()  # (steps, vocab), fp32 logits after processors
    top2 = scores.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    decisive = next((step for step, margin in enumerate(margins) if margin < 0.5), len(margins))
    assert decisive >= 4, f"the fp32 path has near-ties from step {decisive} (margins {margins})"
    new_fp32 = reference.sequences[0, len(prompt) :].tolist()
    new_bf16 = ours[0, len(prompt) :].tolist()
    assert new_bf16[:decisive] == new_fp32[:decisive]
