"""llava: the OneVision-Encoder + Qwen3 video-language model stack (model, data, training, evaluation, demo).

Importing the package is light (no torch, no transformers): lmms-eval imports our entry point
`llava.eval.registration` on every run, even for other models. The transformers Auto classes are registered by
`import llava.model` (done by everything that builds or loads a model); `llava.<sub>` attribute access imports the
sub-package on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBPACKAGES = ("data", "eval", "model", "playground", "serve", "tools", "train")


def __getattr__(name: str) -> ModuleType:
    # `llava.model` without `import llava.model` first (PEP 562): import the sub-package when it is asked for.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
