"""`normalize_visuals`: every shape lmms-eval 0.7.3 tasks return, and missing files named in the error."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from llava.eval.visuals import MissingMediaError, doc_mentions_video, is_video_task, normalize_visuals


@pytest.fixture
def media(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    other = tmp_path / "noext_video"
    other.write_bytes(b"\0")
    image = tmp_path / "page.png"
    Image.new("RGB", (4, 4), "red").save(image)
    return video, other, image


def test_a_bare_string_is_one_video_not_one_image_per_character(media):
    video, _, _ = media
    found = normalize_visuals(str(video))  # temporalbench_long_qa returns the path itself
    assert found.videos == [str(video)] and found.images == []


def test_lists_nested_lists_dicts_images_and_paths(media):
    video, other, image = media
    pil = Image.new("RGB", (4, 4))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    found = normalize_visuals(
        [[pil, str(image)], {"type": "video", "path": str(video)}, {"bytes": buffer.getvalue(), "path": None},
         video, None, [str(other)]]
    )  # fmt: skip
    assert found.videos == [str(video), str(video), str(other)]
    assert found.images[0] is pil and found.images[1] == str(image) and isinstance(found.images[2], Image.Image)
    assert not normalize_visuals([]) and not normalize_visuals(None)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(MissingMediaError, match="video not found: .*gone.mp4") as error:
        normalize_visuals([str(tmp_path / "gone.mp4")])
    assert error.value.path.endswith("gone.mp4")
    with pytest.raises(MissingMediaError, match="image not found"):
        normalize_visuals({"type": "image", "path": str(tmp_path / "gone.jpg")})
    # Without the check (prompt layout only) the path is kept as it is.
    assert normalize_visuals(str(tmp_path / "gone.mp4"), check_files=False).videos == [str(tmp_path / "gone.mp4")]


def test_audio_and_unknown_visuals_are_refused():
    with pytest.raises(ValueError, match="audio"):
        normalize_visuals([{"array": [0.0], "sampling_rate": 16000}])
    with pytest.raises(ValueError, match="unsupported visual of type int"):
        normalize_visuals([3])


def test_video_task_hints():
    assert is_video_task("videomme") and is_video_task("mvbench_action_count") and is_video_task("tomato")
    assert not is_video_task("docvqa_val") and not is_video_task("chartqa")
    assert doc_mentions_video({"video": "a/b.MP4", "q": "?"}) and not doc_mentions_video({"image": "x.png"})


def _model_without_weights(on_missing_video: str):
    from llava.eval.llava_ov_encoder import LlavaOVEncoder

    model = LlavaOVEncoder.__new__(LlavaOVEncoder)  # the visual checks need no checkpoint
    model.task_dict = {"videomme": {"test": [{"videoID": "x"}]}, "docvqa_val": {"validation": [{"q": "?"}]}}
    model.on_missing_video, model.missing_media, model._video_tasks = on_missing_video, [], set()
    return model


def test_no_visual_for_a_video_task_is_a_missing_video_never_a_text_only_answer():
    model = _model_without_weights("skip")
    with pytest.raises(MissingMediaError, match="^videomme doc 0: the task gave no visual"):
        model._docs_visuals(lambda doc: [], 0, "videomme", "test")
    assert not model._docs_visuals(lambda doc: [], 0, "docvqa_val", "validation")  # a text-only task stays one


def test_a_doc_to_visual_that_exits_or_raises_is_one_documents_missing_media():
    import sys

    model = _model_without_weights("skip")
    with pytest.raises(MissingMediaError, match="exited: video path:/x.mp4 does not exist"):
        model._docs_visuals(lambda doc: sys.exit("video path:/x.mp4 does not exist"), 0, "videomme", "test")
    with pytest.raises(MissingMediaError, match="Exception: video path:/y.mp4"):
        model._docs_visuals(lambda doc: (_ for _ in ()).throw(Exception("video path:/y.mp4")), 0, "videomme", "test")


def test_on_missing_video_skip_counts_and_error_stops(tmp_path):
    error = MissingMediaError(str(tmp_path / "gone.mp4"), kind="video")
    model = _model_without_weights("skip")
    model._missing(error, task="videomme", doc_id=3)
    assert model.missing_media == [f"videomme doc 3: video not found: {tmp_path / 'gone.mp4'}"]
    assert model._missing_summary() == "documents with missing media (scored as failed): 1"
    with pytest.raises(MissingMediaError, match="videomme doc 3: video not found: .*gone.mp4"):
        _model_without_weights("error")._missing(error, task="videomme", doc_id=3)
