"""OneVision-Encoder behaviour: invariants between input paths, packing, save/load, dtypes, gradients, errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel

import llava  # noqa: F401  (registers the Auto classes)
from llava.model import OneVisionEncoderConfig, OneVisionEncoderModel
from llava.model.onevision_encoder.checkpoint import build_random_checkpoint
from llava.model.onevision_encoder.checkpoint import main as checkpoint_main
from llava.model.onevision_encoder.presets import (
    onevision_encoder_large,
    onevision_encoder_large_lang,
    onevision_encoder_tiny,
)
from llava.model.registration import COMPILED_PREFIX_KEY_MAPPING


def _model(seed: int = 0, **overrides) -> OneVisionEncoderModel:
    torch.manual_seed(seed)
    model = OneVisionEncoderModel(onevision_encoder_tiny(**overrides)).eval()
    with torch.no_grad():  # non-trivial norms, so that a mixed-up norm cannot hide
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model() -> OneVisionEncoderModel:
    return _model()


def test_dense_video_equals_visible_indices_listing_every_patch(model):
    clip = _randn(2, 3, 5, 28, 42)
    every = torch.arange(5 * 2 * 3).expand(2, -1)
    with torch.no_grad():
        dense = model(clip)
        listed = model(clip, visible_indices=every)
    torch.testing.assert_close(listed.last_hidden_state, dense.last_hidden_state, atol=0, rtol=0)
    torch.testing.assert_close(listed.pooler_output, dense.pooler_output, atol=0, rtol=0)


def test_sparse_gather_equals_explicit_positions_of_the_kept_tokens(model):
    """Path 2 (gather, K != N on the 64-frame grid) == path 3 on the gathered pixels with the grid positions."""
    clip = _randn(1, 3, 64, 28, 14)  # 64 frames of 2x1 patches
    indices = torch.tensor([[0, 3, 64, 65, 100, 127]])
    with torch.no_grad():
        gathered = model(clip, visible_indices=indices)
        frames, rows = indices[0] // 2, indices[0] % 2
        pixels = torch.stack([clip[0, :, f, r * 14 : (r + 1) * 14] for f, r in zip(frames, rows, strict=True)], 1)
        positions = torch.stack([frames, rows, torch.zeros_like(rows)], -1)[None]
        explicit = model(pixels[None], patch_positions=positions)  # 6 one-patch frames
    torch.testing.assert_close(gathered.last_hidden_state, explicit.last_hidden_state, atol=1e-6, rtol=1e-6)


def test_packed_mosaic_keeps_token_order_and_uses_index_positions(model):
    clip = _randn(1, 3, 2, 28, 42)
    indices = torch.tensor([[0, 1, 2, 3, 4, 5, 70, 71, 200, 201, 300, 383]])  # K == N == 12
    with torch.no_grad():
        packed = model(clip, visible_indices=indices)
        t, rest = indices // 6, indices % 6
        positions = torch.stack([t, rest // 3, rest % 3], -1)
        explicit = model(clip, patch_positions=positions)
        shuffled = model(clip, visible_indices=indices.flip(1))
    torch.testing.assert_close(packed.last_hidden_state, explicit.last_hidden_state, atol=0, rtol=0)
    assert not torch.allclose(shuffled.last_hidden_state, packed.last_hidden_state, atol=1e-3)


def test_image_equals_one_frame_video(model):
    image = _randn(2, 3, 42, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(image).last_hidden_state, model(image[:, :, None]).last_hidden_state)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_packed_varlen_equals_one_by_one(attn_implementation):
    model = _model(seed=1)
    model.set_attn_implementation(attn_implementation)
    items = [_randn(3, 42, 56, seed=1), _randn(3, 3, 28, 28, seed=2), _randn(3, 2, 14, 70, seed=3)]
    positions = [None, None, torch.tensor([[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4],
                                           [63, 2, 0], [63, 2, 1], [63, 2, 2], [63, 2, 3], [63, 2, 4]])]  # fmt: skip
    with torch.no_grad():
        packed = model(items, patch_positions=positions, output_hidden_states=True)
        singles = [
            model(item[None], patch_positions=None if p is None else p[None])
            for item, p in zip(items, positions, strict=True)
        ]
    lengths = [12, 12, 10]
    assert packed.cu_seqlens.tolist() == [0, 12, 24, 34]
    assert packed.last_hidden_state.shape == (1, 34, 128) and packed.pooler_output.shape == (3, 128)
    assert len(packed.hidden_states) == 3
    for chunk, pooled, single in zip(
        packed.last_hidden_state.split(lengths, dim=1), packed.pooler_output, singles, strict=True
    ):
        torch.testing.assert_close(chunk, single.last_hidden_state, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pooled, single.pooler_output[0], atol=1e-5, rtol=1e-5)


def test_hidden_states_layout_and_tuple_output(model):
    image = _randn(1, 3, 28, 28)
    with torch.no_grad():
        out = model(image, output_hidden_states=True)
        as_tuple = model(image, output_hidden_states=True, return_dict=False)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    # last_hidden_state is post-norm; hidden_states[-1] is the raw last layer
    torch.testing.assert_close(model.layernorm_post(out.hidden_states[-1]), out.last_hidden_state)
    assert len(as_tuple) == 3 and as_tuple[1] is not None
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_no_head_model_returns_raw_last_layer_and_none_pooler():
    model = _model(use_head=False)
    assert not hasattr(model, "head") and not hasattr(model, "layernorm_post")
    with torch.no_grad():
        out = model(_randn(1, 3, 28, 28), output_hidden_states=True)
        as_tuple = model(_randn(1, 3, 28, 28), return_dict=False)
    assert out.pooler_output is None and as_tuple[1] is None
    torch.testing.assert_close(out.last_hidden_state, out.hidden_states[-1], atol=0, rtol=0)


def test_save_load_round_trip_is_identical(tmp_path, model):
    model.save_pretrained(tmp_path / "saved")
    reloaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    assert type(reloaded) is OneVisionEncoderModel
    image = _randn(1, 3, 28, 42)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(image).last_hidden_state, model(image).last_hidden_state, atol=0, rtol=0)
    with safe_open(tmp_path / "saved" / "model.safetensors", "pt") as f:
        assert set(f.keys()) == set(model.state_dict())


def test_upstream_layout_checkpoint_loads_without_remote_code(tmp_path):
    folder = checkpoint_main([str(tmp_path / "ck"), "--dtype", "bfloat16", "--no-head"])
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_onevision_encoder.OneVisionEncoderModel"
    assert (folder / "preprocessor_config.json").is_file()
    loaded = AutoModel.from_pretrained(folder)  # no trust_remote_code; the remote files are not even there
    assert type(loaded) is OneVisionEncoderModel and loaded.dtype == torch.bfloat16
    assert AutoConfig.from_pretrained(folder).use_head is False


def test_lang_and_truncated_loading_ignore_unused_weights(tmp_path):
    """A `-large` layout loads as use_head=False (head ignored) and truncated to fewer layers (LLaVA's [-2])."""
    folder = build_random_checkpoint(tmp_path / "large_like", config=onevision_encoder_tiny(num_hidden_layers=3))
    full = OneVisionEncoderModel.from_pretrained(folder).eval()
    truncated = OneVisionEncoderModel.from_pretrained(folder, num_hidden_layers=2, use_head=False).eval()
    image = _randn(1, 3, 28, 42)
    with torch.no_grad():
        expected = full(image, output_hidden_states=True).hidden_states[-2]
        torch.testing.assert_close(truncated(image).last_hidden_state, expected, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("builder", "tensors", "parameters"),
    [(onevision_encoder_large, 399, 315_509_760), (onevision_encoder_large_lang, 387, 302_913_536)],
)
def test_published_configs_key_set_and_parameter_count(builder, tensors, parameters):
    with torch.device("meta"):
        model = OneVisionEncoderModel(builder())
    state = model.state_dict()
    assert len(state) == tensors
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert state["embeddings.patch_embedding.weight"].shape == (1024, 3, 14, 14)
    assert "encoder.layers.23.mlp.fc2.weight" in state and not any("inv_freq" in k for k in state)
    assert ("head.attention.in_proj_weight" in state) == builder().use_head


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_preserved_and_close_to_fp32(model, dtype):
    low = _model().to(dtype)
    assert not list(low.buffers())  # no RoPE buffer that a cast could quantise
    image = _randn(1, 3, 42, 42)
    with torch.no_grad():
        reference = model(image, output_hidden_states=True)
        out = low(image.to(dtype), output_hidden_states=True)
    assert out.last_hidden_state.dtype == dtype and out.pooler_output.dtype == dtype
    assert all(h.dtype == dtype for h in out.hidden_states)
    cosine = torch.nn.functional.cosine_similarity(out.last_hidden_state.float(), reference.last_hidden_state, dim=-1)
    assert cosine.min() > 0.99
    torch.testing.assert_close(out.last_hidden_state.float(), reference.last_hidden_state, atol=0.1, rtol=0.05)


def test_rope_is_float32_after_bfloat16_cast():
    model = _model().to(torch.bfloat16)
    cos, _ = model.video_rope(torch.tensor([[63.0, 35.0, 35.0]]))
    reference, _ = _model().video_rope(torch.tensor([[63.0, 35.0, 35.0]]))
    assert cos.dtype == torch.float32
    torch.testing.assert_close(cos, reference, atol=0, rtol=0)


def test_rope_compute_dtype_modes_differ_only_in_low_precision():
    fp32_mode = _model(rope_compute_dtype="float32").to(torch.bfloat16)
    act_mode = _model(rope_compute_dtype="activation").to(torch.bfloat16)
    clip = _randn(1, 3, 4, 42, 42).to(torch.bfloat16)
    with torch.no_grad():
        a, b = fp32_mode(clip).last_hidden_state, act_mode(clip).last_hidden_state
    assert not torch.equal(a, b)
    torch.testing.assert_close(a.float(), b.float(), atol=0.1, rtol=0.05)
    assert OneVisionEncoderConfig(use_head=False).resolved_rope_compute_dtype == "activation"
    assert OneVisionEncoderConfig(use_head=True).resolved_rope_compute_dtype == "float32"


def test_gradients_reach_every_parameter_and_checkpointing_matches():
    model = _model().train()
    clip = _randn(2, 3, 2, 28, 28)

    def grads(m):
        m.zero_grad()
        out = m(clip)
        (out.last_hidden_state.pow(2).mean() + out.pooler_output.pow(2).mean()).backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    plain = grads(model)
    assert set(plain) == {n for n, _ in model.named_parameters()}
    assert all(g.abs().sum() > 0 for g in plain.values())
    model.activation_checkpointing_enable()
    assert model.encoder.layers[0].gradient_checkpointing
    checkpointed = grads(model)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("pixel_values", "kwargs", "message"),
    [
        (_randn(3, 28, 28), {}, r"\[B, C, H, W\]"),
        (_randn(1, 3, 28, 30), {}, "multiples of patch_size=14"),
        (_randn(1, 1, 28, 28), {}, "channels"),
        (_randn(1, 3, 28, 28), {"visible_indices": torch.tensor([[0]]), "patch_positions": torch.zeros(1, 1, 3)},
         "not both"),
        (_randn(1, 3, 1, 14, 14), {"patch_positions": torch.tensor([[[64, 0, 0]]])}, "outside the temporal grid"),
        (_randn(1, 3, 1, 14, 14), {"patch_positions": torch.tensor([[[0, -1, 0]]])}, "non-negative"),
        (_randn(1, 3, 1, 14, 28), {"patch_positions": torch.zeros(1, 3, 3)}, "one \\(t, h, w\\) row per patch"),
        (_randn(1, 3, 65, 14, 14), {}, "65 frames does not fit the 64-frame RoPE grid"),
        (_randn(1, 3, 2, 14, 14), {"visible_indices": torch.tensor([[0, 128]])}, "out of range"),
        (_randn(1, 3, 2, 14, 14), {"visible_indices": torch.tensor([[5]])}, r"\[0, 2\)"),
        (_randn(1, 3, 14, 14), {"visible_indices": torch.tensor([[0.0]])}, "integer"),
        ([_randn(3, 14, 14), _randn(1, 3, 1, 14, 14)], {}, r"pixel_values\[1\]"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_clear_errors(model, pixel_values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(pixel_values, **kwargs)


def test_more_than_64_frames_work_with_positions(model):
    """Clips longer than the grid are supported once their frames are mapped onto it (spec section 5)."""
    frames = 100
    clip = _randn(1, 3, frames, 14, 14)
    t = torch.linspace(0, 63, frames).long()
    positions = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], -1)[None]
    with torch.no_grad():
        assert model(clip, patch_positions=positions).last_hidden_state.shape == (1, frames, 128)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="multiple of 32"):
        OneVisionEncoderConfig(hidden_size=96, num_attention_heads=2)


def test_compiled_checkpoint_prefix_and_stale_rope_buffers_load(tmp_path):
    """`encoder._orig_mod.` keys (torch.compile) load with the documented key map; stored `inv_freq` are ignored."""
    folder = build_random_checkpoint(tmp_path / "ck")
    plain = load_file(folder / "model.safetensors")
    renamed = {k.replace("encoder.layers.", "encoder._orig_mod.layers."): v for k, v in plain.items()}
    renamed["video_rope.inv_freq_t"] = torch.full((8,), 4.16e13)  # garbage, as transformers 5 leaves them
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model, info = OneVisionEncoderModel.from_pretrained(
        folder, output_loading_info=True, key_mapping=COMPILED_PREFIX_KEY_MAPPING
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in plain.items())
