"""llava: the OneVision-Encoder + Qwen3 video-language model stack (model, data, training, evaluation, demo)."""

from . import model  # noqa: F401  (registers the model classes with the transformers Auto classes)

__version__ = "0.1.0"
