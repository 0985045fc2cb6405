"""Every checkpoint folder the project writes opens in the chat demo as is (processor and model `from_pretrained`,
a question about an image answered): the SFT training output, the stage-1 output (whose projector file also feeds
`conversion assemble --projector`), a LoRA run's output (adapters merged) and the conversion command's folder. The
conversion's upstream path and pickle refusal are covered in tests/model/test_llava_ov_conversion.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov import conversion
from llava.model.safe_weights import PickleWeightsError
from llava.serve import ChatEngine, ChatSession
from llava.train.arguments import CONFIG_DIR
from llava.train.train import main as train_main
from tests.train.conftest import playground_module


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sizes = ["--train-videos", "4", "--eval-videos", "1", "--train-images", "4", "--eval-images", "1"]
    return playground_module().main(["--out", str(tmp_path_factory.mktemp("playground")), *sizes])


def _train(config: str, checkpoint: Path, data: Path, out: Path, *extra: str) -> Path:
    return train_main([
        str(Path(CONFIG_DIR) / config), "--model_name_or_path", str(checkpoint), "--data_path", str(data),
        "--output_dir", str(out), "--per_device_train_batch_size", "2", "--max_steps", "1", "--save_strategy", "no",
        "--logging_steps", "1", *extra,
    ])  # fmt: skip


def _chat_about_an_image(folder: Path, image: Path) -> None:
    """What a user of the demo does with the folder: load it, load an image, ask."""
    assert isinstance(LlavaOVProcessor.from_pretrained(folder), LlavaOVProcessor)
    engine = ChatEngine.from_pretrained(folder, max_new_tokens=3)
    with ChatSession(engine) as session:
        session.load(image)
        list(session.ask("What colour is the shape?"))
        assert session.last_count.visual_tokens > 0 and session.last_count.generated_tokens > 0


def test_training_outputs_open_in_the_demo(
    tiny_checkpoint: Path, playground: Path, playground_image: Path, tmp_path: Path
) -> None:
    sft = _train("sft_tiny.yaml", tiny_checkpoint, playground / "sft.yaml", tmp_path / "sft")
    _chat_about_an_image(sft, playground_image)

    stage1 = _train("pretrain_tiny.yaml", tiny_checkpoint, playground / "captions_stage1.json", tmp_path / "stage1")
    _chat_about_an_image(stage1, playground_image)
    projector = load_file(stage1 / conversion.PROJECTOR_FILE)
    trained = LlavaOVForConditionalGeneration.from_pretrained(stage1).model.multi_modal_projector.state_dict()
    for key, tensor in trained.items():
        torch.testing.assert_close(projector[f"model.multi_modal_projector.{key}"], tensor, rtol=0, atol=0)

    lora = _train("sft_tiny.yaml", tiny_checkpoint, playground / "sft.yaml", tmp_path / "lora", "--lora_enable",
                  "true", "--lora_r", "4", "--warmup_steps", "0", "--train_vision_tower", "false")  # fmt: skip
    assert (lora / "adapter" / "adapter_model.safetensors").is_file()  # the adapters, for peft
    _chat_about_an_image(lora, playground_image)
    base = LlavaOVForConditionalGeneration.from_pretrained(tiny_checkpoint).state_dict()
    merged = LlavaOVForConditionalGeneration.from_pretrained(lora).state_dict()
    assert not any("lora" in key for key in merged)
    changed = [key for key in base if not torch.equal(base[key], merged[key])]
    assert any(".q_proj." in key for key in changed)  # the adapters are merged into the LM
    assert not any("vision_tower" in key for key in changed)  # frozen here: adapters and projector only


def test_pickle_checkpoint_needs_allow_pickle_in_the_demo(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    LlavaOVForConditionalGeneration.from_pretrained(tiny_checkpoint).save_pretrained(folder)
    LlavaOVProcessor.from_pretrained(tiny_checkpoint).save_pretrained(folder)
    torch.save(conversion.read_state_dict(folder), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PickleWeightsError, match="--allow-pickle"):
        ChatEngine.from_pretrained(folder)
    for front_end in ("cli", "web"):  # one line and a failing exit status, no traceback
        run = subprocess.run(
            [sys.executable, "-m", f"llava.serve.{front_end}", "--model-path", str(folder)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "cannot load the model" in run.stderr and "--allow-pickle" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    engine = ChatEngine.from_pretrained(folder, allow_pickle=True, max_new_tokens=2)
    with ChatSession(engine) as session:
        list(session.ask("Hello"))
        assert session.last_count.generated_tokens > 0
