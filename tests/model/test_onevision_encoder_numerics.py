"""OneVision-Encoder numerics: the upstream fixture, the spec's deterministic fixture, and other configurations
against an independent float64 reference (tests/model/reference_encoder.py)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

import llava  # noqa: F401  (registers the Auto classes)
from llava.model import OneVisionEncoderConfig, OneVisionEncoderModel
from llava.model.onevision_encoder.checkpoint import build_random_checkpoint
from llava.model.onevision_encoder.presets import onevision_encoder_tiny
from llava.model.onevision_encoder.rope import OneVisionEncoderRotaryEmbedding

from .reference_encoder import reference_forward

TOLERANCE = {"eager": 1e-5, "sdpa": 1e-4}

# case -> (input kwargs built from the reference file, outputs checked)
CASES = {
    "image": (
        {"output_hidden_states": True},
        ["last_hidden_state", "pooler_output", "hidden_states_0", "hidden_states_m2"],
    ),
    "video_dense": ({}, ["last_hidden_state", "pooler_output"]),
    "sparse": ({"visible_indices": None}, ["last_hidden_state", "pooler_output"]),
    "packed": ({"visible_indices": None}, ["last_hidden_state", "pooler_output"]),
    "positions": ({"patch_positions": None}, ["last_hidden_state", "pooler_output"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_fixture(reference_fixtures):
    folder = reference_fixtures / "ov_encoder_tiny"
    return folder, load_file(folder / "reference.safetensors")


def _outputs(output) -> dict[str, torch.Tensor]:
    found = {"last_hidden_state": output.last_hidden_state, "pooler_output": output.pooler_output}
    if output.hidden_states is not None:
        found["hidden_states_0"] = output.hidden_states[0]
        found["hidden_states_m2"] = output.hidden_states[-2]
    return found


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_upstream_fixture_matches(tiny_fixture, case, attn_implementation):
    folder, reference = tiny_fixture
    model = AutoModel.from_pretrained(folder, attn_implementation=attn_implementation).eval()
    assert isinstance(model, OneVisionEncoderModel)
    kwargs, checked = CASES[case]
    kwargs = {k: (reference[f"{case}.{k}"] if v is None else v) for k, v in kwargs.items()}
    with torch.no_grad():
        found = _outputs(model(reference[f"{case}.pixel_values"], **kwargs))
    tol = TOLERANCE[attn_implementation]
    for name in checked:
        torch.testing.assert_close(found[name], reference[f"{case}.{name}"], atol=tol, rtol=tol, msg=f"{case}.{name}")


def test_reference_implementation_matches_upstream_fixture(tiny_fixture):
    """Pins the independent reference used below to the upstream numbers."""
    folder, reference = tiny_fixture
    state = load_file(folder / "model.safetensors")
    config = OneVisionEncoderConfig.from_pretrained(folder).to_dict()
    last, pooled, states = reference_forward(
        state, config, reference["sparse.pixel_values"], visible_indices=reference["sparse.visible_indices"]
    )
    torch.testing.assert_close(last.float(), reference["sparse.last_hidden_state"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled.float(), reference["sparse.pooler_output"], atol=1e-5, rtol=1e-5)
    last, _, states = reference_forward(state, config, reference["image.pixel_values"])
    torch.testing.assert_close(states[-2].float(), reference["image.hidden_states_m2"], atol=1e-5, rtol=1e-5)


def _spec_deterministic_model() -> OneVisionEncoderModel:
    """Weights of spec section 11: key j of the sorted keys, element i -> 0.02 sin(0.37 i + 1.3 j) (+1 for norms)."""
    model = OneVisionEncoderModel(onevision_encoder_tiny(use_head=True)).eval()
    state = model.state_dict()
    for j, name in enumerate(sorted(state)):
        i = torch.arange(state[name].numel(), dtype=torch.float64)
        values = 0.02 * torch.sin(0.37 * i + 1.3 * j) + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
        state[name] = values.reshape(state[name].shape).to(torch.float32)
    model.load_state_dict(state)
    return model


def _spec_input(*shape: int) -> torch.Tensor:
    i = torch.arange(math.prod(shape), dtype=torch.float64)
    return torch.sin(0.001 * i * 7.0).reshape(shape).to(torch.float32)


def test_spec_deterministic_fixture():
    """The expected sums and slices tabulated in spec section 11 (a second upstream-produced fixture)."""
    model = _spec_deterministic_model()
    with torch.no_grad():
        out = model(_spec_input(1, 3, 56, 84))
        assert out.last_hidden_state.sum().item() == pytest.approx(1.0465240, abs=2e-4)
        assert out.last_hidden_state.abs().sum().item() == pytest.approx(2765.9529, rel=1e-6)
        torch.testing.assert_close(
            out.last_hidden_state[0, 0, :4], torch.tensor([-1.1350840, 0.0979555, 0.8936370, -1.3517665])
        )
        torch.testing.assert_close(
            out.last_hidden_state[0, 23, :4], torch.tensor([-1.0887039, 0.0300366, 0.9432185, -1.3534273])
        )
        expected_pooled = torch.tensor([-0.0218640, 0.0473626, 0.0269942, 0.0725994])
        torch.testing.assert_close(out.pooler_output[0, :4], expected_pooled)

        out = model(_spec_input(1, 3, 3, 28, 42))
        assert out.last_hidden_state.sum().item() == pytest.approx(0.8667755, abs=2e-4)
        torch.testing.assert_close(
            out.last_hidden_state[0, 17, :4], torch.tensor([0.8372143, -1.3970469, 1.0306096, -0.0584598])
        )

        positions = torch.tensor([[[0, 0, 0], [0, 1, 2], [21, 0, 1], [21, 1, 1], [42, 0, 2], [63, 1, 0]]])
        out = model(_spec_input(1, 3, 1, 28, 42), patch_positions=positions)
        assert out.last_hidden_state.sum().item() == pytest.approx(0.2837067, abs=2e-4)
        torch.testing.assert_close(
            out.last_hidden_state[0, 5, :4], torch.tensor([1.2165613, -0.4632143, -0.6711420, 1.3858203])
        )

        out = model(_spec_input(1, 3, 64, 28, 42), visible_indices=torch.tensor([[0, 5, 100, 101, 383, 200, 7]]))
        assert out.last_hidden_state.sum().item() == pytest.approx(0.3421059, abs=2e-4)
        torch.testing.assert_close(
            out.last_hidden_state[0, 6, :4], torch.tensor([0.1597217, -1.1392318, 1.3453550, -0.7529793])
        )


def test_rope_reference_angles():
    """Spec section 4: the angles a[0:32] for (t, h, w) = (4, 3, 5), then duplicated by concatenation."""
    expected = torch.tensor([
        4, 1.2649111, 0.4, 0.12649111, 0.04, 0.012649111, 0.004, 0.0012649111,
        3, 1.3924767, 0.6463304, 0.3, 0.13924766, 0.06463304, 0.03, 0.013924769, 0.0064633032, 0.003,
        0.0013924768, 0.00064633024,
        5, 2.3207946, 1.0772172, 0.5, 0.23207942, 0.10772175, 0.05, 0.023207948, 0.010772171, 0.005,
        0.0023207949, 0.001077217,
    ])  # fmt: skip
    angles = OneVisionEncoderRotaryEmbedding(64, 10000.0).angles(torch.tensor([4.0, 3.0, 5.0]))
    assert angles.dtype == torch.float32
    torch.testing.assert_close(angles[:32], expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(angles[32:], angles[:32], atol=0, rtol=0)


OTHER_CONFIGS = {
    "no_head": {"use_head": False},
    "three_layers_wide": {
        "hidden_size": 192, "intermediate_size": 320, "num_attention_heads": 3, "num_hidden_layers": 3,
    },
    "patch16_head_dim32": {"patch_size": 16, "num_attention_heads": 4},
    "rope_theta": {"rope_theta": 500.0, "layer_norm_eps": 1e-5},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OTHER_CONFIGS))
def test_other_upstream_checkpoints_load_and_match_reference(tmp_path, name):
    """Upstream-layout folders of other configurations load through AutoModel and match the float64 reference."""
    folder = build_random_checkpoint(tmp_path / name, config=onevision_encoder_tiny(**OTHER_CONFIGS[name]), seed=3)
    model = AutoModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    config = model.config.to_dict()
    state = load_file(folder / "model.safetensors")
    patch = model.config.patch_size
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, 3 * patch, 5 * patch, generator=generator)
    clip = torch.randn(1, 3, 4, 2 * patch, 3 * patch, generator=generator)
    indices = torch.tensor([[0, 3, 7, 8, 20, 23]])  # K != N: gather
    positions = torch.tensor([[[0, 0, 0], [9, 1, 1], [18, 0, 2], [27, 5, 7], [63, 1, 0], [40, 0, 1]]])
    cases = [
        (image, {}),
        (clip, {}),
        (clip, {"visible_indices": indices}),
        (clip[:, :, :1], {"patch_positions": positions}),
    ]
    with torch.no_grad():
        for pixel_values, kwargs in cases:
            out = model(pixel_values, output_hidden_states=True, **kwargs)
            last, pooled, states = reference_forward(state, config, pixel_values, **kwargs)
            torch.testing.assert_close(out.last_hidden_state, last.float(), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.hidden_states[-2], states[-2].float(), atol=1e-4, rtol=1e-4)
            if model.config.use_head:
                torch.testing.assert_close(out.pooler_output, pooled.float(), atol=1e-4, rtol=1e-4)
            else:
                assert out.pooler_output is None
