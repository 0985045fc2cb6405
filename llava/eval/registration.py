"""The `lmms_eval.models` entry point (spec lmms_eval_plugin.md section 2).

lmms-eval imports this module on every run and loads all entry points inside ONE try/except, so an exception here
would silently drop every plugin registered after ours: import only `registry_v2` (never `lmms_eval.models`, a
circular import) and nothing of ours that pulls torch.
"""

from __future__ import annotations

MODEL_ID = "llava_ov_encoder"
SIMPLE_CLASS_PATH = "llava.eval.llava_ov_encoder.LlavaOVEncoder"


def manifests() -> list:
    """One `ModelManifest` (simple class only: multiple-choice needs the simple request layout, spec section 4)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=SIMPLE_CLASS_PATH)]
