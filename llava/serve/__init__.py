"""Chat demo over a video or an image: a terminal program (`llava.serve.cli`) and a web page (`llava.serve.web`).

Both front ends drive one `ChatSession` (`llava.serve.session`): the processor renders every prompt and
`model.generate` streams the answer, so the demo has no prompt format of its own.
"""

from .checkpoint import DEFAULT_MODEL_PATH, resolve_model_path
from .media import DEFAULT_MAX_IMAGE_PIXELS, Media, MediaError, UnsupportedMediaError, detect_media_kind, load_media
from .session import ChatEngine, ChatSession, TokenCount

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MODEL_PATH",
    "ChatEngine",
    "ChatSession",
    "Media",
    "MediaError",
    "TokenCount",
    "UnsupportedMediaError",
    "detect_media_kind",
    "load_media",
    "resolve_model_path",
]
