"""Real-size dry runs (benchmarks/real_scale_step.py): the real configurations build on the meta device with the
published parameter counts, and (slow) one real-width training step runs on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llava.train.param_groups import LANGUAGE, PROJECTOR, VISION

REPO_ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    path = REPO_ROOT / "benchmarks" / "real_scale_step.py"
    spec = importlib.util.spec_from_file_location("real_scale_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_size_parameter_counts_on_meta():
    bench = _benchmark()
    config = bench.real_config()
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size, text.tie_word_embeddings) == (
        2048, 28, 151936, True,
    )  # fmt: skip
    counts = bench.parameter_counts(config)
    # Qwen3-1.7B as published: 1.72B with the tied embedding, 1.41B without it.
    assert counts[LANGUAGE] == 1_720_574_976
    assert counts[LANGUAGE] - text.vocab_size * text.hidden_size == 1_409_410_048
    # The tower runs 23 of the 24 layers of OneVision-Encoder-large (vision_feature_layer -2), without the head.
    width, mlp = vision.hidden_size, vision.intermediate_size
    per_layer = 4 * (width * width + width) + 2 * width * mlp + mlp + width + 4 * width  # attention, MLP, 2 norms
    patch_embedding = 3 * vision.patch_size**2 * width
    assert counts[VISION] - 23 * per_layer in (patch_embedding, patch_embedding + 2 * width)  # (+ pre-norm)
    assert counts[PROJECTOR] == (width + 1) * 2048 + (2048 + 1) * 2048


@pytest.mark.slow
def test_real_width_step_runs_on_cpu():
    result = _benchmark().main(["--text-tokens", "128", "--answer-tokens", "32"])
    assert result["tokens"] == 10368 + 128
    assert result["rss_peak_gb"] >= result["rss_model_gb"] > result["rss_before_gb"]
    assert result["step_s"] > 0 and result["loss"] > 0
