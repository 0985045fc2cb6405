"""`llava_ov_encoder`: the LLaVA-OV model as an lmms-eval 0.7.3 simple model (spec lmms_eval_plugin.md sections 4,
5 and 10.2).

The prompt format belongs to `LlavaOVProcessor`: a request's visuals become `<image>` / `<video>` markers in front
of the task's context, and the processor expands them. Requests are batched `batch_size` at a time and answered in
request order; `until` stop strings cut the generated text; loglikelihood returns losses wrapped in
`GenerationResult` (0.7.x stringifies bare tuples, spec section 5.1).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov.chat_format import CHAT_TEMPLATES, IMAGE_MARKER, marker_prefix

from .video_sources import VideoSources
from .visuals import MissingMediaError, Visuals, doc_mentions_video, is_video_task, normalize_visuals

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# gen_kwargs keys HF `generate` understands; lmms-eval tasks carry others (e.g. image_aspect_ratio): dropped.
_GENERATE_KEYS = ("temperature", "top_p", "top_k", "num_beams", "repetition_penalty")
ON_MISSING_VIDEO = ("error", "skip")


def truncate_at_stop(text: str, until: Sequence[str]) -> str:
    """`text` up to the earliest occurrence of any stop string (the stop string itself removed)."""
    cut = len(text)
    for stop in until:
        if stop:
            index = text.find(stop)
            if index != -1:
                cut = min(cut, index)
    return text[:cut]


def split_visuals(visuals: Any) -> tuple[list[Any], list[str]]:
    """lmms-eval visuals of any shape -> (images, video paths), without checking that the files exist."""
    found = normalize_visuals(visuals, check_files=False)
    return found.images, found.videos


class LlavaOVEncoder(lmms):
    """LLaVA-OV (OneVision-Encoder + Qwen3) for lmms-eval.

    Args (all from `--model_args`, values typed by lmms-eval):
        pretrained: checkpoint folder (ours, `save_pretrained` layout).
        conv_template: `qwen_1_5` (ChatML, upstream's) or `plain`.
        device: `cpu`, `cuda`, `cuda:N` (with `accelerate launch` each process takes its local GPU).
        dtype: `float32` | `bfloat16` | `float16`; default bfloat16 on GPU (the training dtype), float32 on CPU.
        attn_implementation: passed to `from_pretrained` (`sdpa`, `eager`, `flash_attention_2`).
        video_mode: `codec` (cv_reader selection on the fly) | `codec_offline` (precomputed assets) | `uniform`.
        offline_root: precompute output folder(s); several separated by `;` or `os.pathsep` (`--model_args` already
            splits on commas). A root that does not exist is an error (upstream skipped it silently).
        on_missing: `codec` (log a warning and select now) | `error` for `codec_offline` misses.
        on_missing_video: a document whose video (or image) file does not exist, or a video task that gives no
            visual: `skip` (default; logged with the file's name, counted, the document scored as failed: empty
            answer, infinite loss) | `error` (stop the run with the file's name).
        max_new_tokens: overrides the task's `max_new_tokens` when given (default: the task's, else 1024).
        batch_size: requests per forward pass.
        allow_pickle: also load `pytorch_model.bin` weights (a pickle; refused by default).
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        conv_template: str = "qwen_1_5",
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        video_mode: str = "codec",
        offline_root: str | None = None,
        on_missing: str = "codec",
        on_missing_video: str = "skip",
        max_new_tokens: int | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
        allow_pickle: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            # Unknown args are not fatal (upstream asserted kwargs == {}), but never silently ignored either.
            logger.warning("llava_ov_encoder: ignoring unknown model_args %s", sorted(kwargs))
        _ensure_log_handler()
        if on_missing_video not in ON_MISSING_VIDEO:
            raise ValueError(f"on_missing_video must be one of {ON_MISSING_VIDEO}, got {on_missing_video!r}")
        self.on_missing_video = on_missing_video
        self.missing_media: list[str] = []  # "task doc N: what" of every document scored as failed
        self._video_tasks: set[str] = set()  # tasks that gave a video for some document in this run
        self._rank, self._world_size, device, accelerator = _distributed_setup(device)
        if accelerator is not None:
            self.accelerator = accelerator  # the evaluator gathers across processes through it
        self._device = torch.device(device)
        if dtype is None:
            dtype = "bfloat16" if self._device.type == "cuda" else "float32"
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.dtype = DTYPES[dtype]
        load_kwargs: dict[str, Any] = {"dtype": self.dtype, "allow_pickle": bool(allow_pickle)}
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        self.model = LlavaOVForConditionalGeneration.from_pretrained(pretrained, **load_kwargs).to(self._device)
        self.model.eval()
        self.processor = LlavaOVProcessor.from_pretrained(pretrained)
        if conv_template not in CHAT_TEMPLATES:
            raise ValueError(f"conv_template must be one of {CHAT_TEMPLATES}, got {conv_template!r}")
        self.processor.template = conv_template
        roots = [root for root in str(offline_root or "").replace(os.pathsep, ";").split(";") if root]
        self.videos = VideoSources(
            mode=video_mode,
            offline_roots=roots,
            num_frames=self.processor.num_video_frames,
            square_size=self.processor.video_square_size,
            patch_size=self.processor.video_patch_size,
            temporal_size=self.processor.video_temporal_size,
            on_missing=on_missing,
        )
        if not str(batch_size).isdigit():
            logger.warning("llava_ov_encoder: batch_size %r is not a number, using 1", batch_size)
            batch_size = 1
        self.batch_size_per_gpu = max(1, int(batch_size))
        if max_batch_size is not None:
            self.batch_size_per_gpu = min(self.batch_size_per_gpu, int(max_batch_size))
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        logger.info("llava_ov_encoder: %s on %s (%s), video_mode=%s, batch_size=%d, rank %d/%d", pretrained,
                    self._device, dtype, video_mode, self.batch_size_per_gpu, self._rank,
                    self._world_size)  # fmt: skip

    # ------------------------------------------------------------------------------ lmms-eval properties
    @property
    def device(self) -> torch.device:
        """The device of this process (lmms-eval's multi-process evaluator puts its gather tensors there)."""
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    # ------------------------------------------------------------------------------------------ inputs
    def _docs_visuals(self, doc_to_visual: Callable, doc_id: int, task: str, split: str) -> Visuals:
        """The visuals of one document. `MissingMediaError` when a file is missing or a video task gives none (a
        video question answered text-only would be scored as if the model had seen the video)."""
        doc = self.task_dict[task][split][doc_id]
        try:
            raw = doc_to_visual(doc)
        except SystemExit as exit_:
            # videomme's doc_to_visual calls sys.exit("video path:... does not exist") for a missing video: one
            # document's media, not a reason to end the whole run.
            raise MissingMediaError(str(exit_.code), kind="video",
                                    message=f"{task} doc {doc_id}: the task's doc_to_visual exited: {exit_.code}",
                                    ) from None  # fmt: skip
        except Exception as error:  # noqa: BLE001 (temporalbench raises a bare Exception naming the missing file)
            raise MissingMediaError(str(error), kind="media", message=f"{task} doc {doc_id}: the task's doc_to_visual "
                                    f"failed: {type(error).__name__}: {error}") from error  # fmt: skip
        visuals = normalize_visuals(raw)
        if visuals.videos:
            self._video_tasks.add(task)
        elif not visuals.images and (task in self._video_tasks or is_video_task(task) or doc_mentions_video(doc)):
            raise MissingMediaError(
                "", kind="video", message=f"{task} doc {doc_id}: the task gave no visual (its video is missing?)"
            )
        return visuals

    def _missing(self, error: MissingMediaError, *, task: str, doc_id: int) -> None:
        """A document whose media is missing: stop (`on_missing_video=error`) or log, count and score it failed."""
        prefix = f"{task} doc {doc_id}: "
        what = str(error) if str(error).startswith(prefix) else prefix + str(error)
        if self.on_missing_video == "error":
            raise MissingMediaError(
                error.path, kind=error.kind, message=f"{what} (on_missing_video=skip scores it as failed)"
            ) from error
        self.missing_media.append(what)
        logger.warning("%s; scored as failed (on_missing_video=skip)", what)

    def _missing_summary(self) -> str:
        return f"documents with missing media (scored as failed): {len(self.missing_media)}"

    def _sample(self, context: str, visuals: Visuals | Sequence[Any]) -> tuple[list[dict], list[Any], list[Any]]:
        """(conversation, images, videos) of one request: one marker per visual, in front of the context (a context
        that already places exactly one `<image>` per image keeps its own image markers)."""
        if not isinstance(visuals, Visuals):
            visuals = normalize_visuals(visuals, check_files=False)
        images, video_paths = visuals.images, visuals.videos
        videos = [self.videos.resolve(path) for path in video_paths]
        own_markers = images and context.count(IMAGE_MARKER) == len(images)
        prefix = marker_prefix(num_videos=len(videos), num_images=0 if own_markers else len(images))
        return [{"from": "human", "value": prefix + context}], images, videos

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {"input_ids": batch["input_ids"].to(self._device),
               "attention_mask": batch["attention_mask"].to(self._device)}  # fmt: skip
        if batch["pixel_values"]:
            out["pixel_values"] = [p.to(self._device, self.dtype) for p in batch["pixel_values"]]
            out["patch_positions"] = [None if p is None else p.to(self._device) for p in batch["patch_positions"]]
        return out

    # -------------------------------------------------------------------------------------- generation
    def _generate_kwargs(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        max_new = self.max_new_tokens or int(gen_kwargs.get("max_new_tokens") or 1024)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new}
        sample = bool(gen_kwargs.get("do_sample", False)) and float(gen_kwargs.get("temperature", 0) or 0) > 0
        kwargs["do_sample"] = sample
        for key in _GENERATE_KEYS:
            if key in gen_kwargs and (sample or key in ("num_beams", "repetition_penalty")):
                kwargs[key] = gen_kwargs[key]
        return kwargs

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Greedy (or sampled) answers in request order; requests with equal `gen_kwargs` share batches."""
        results: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(index)
        for indices in groups.values():
            gen_kwargs = dict(requests[indices[0]].args[1])
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            generate_kwargs = self._generate_kwargs(gen_kwargs)
            for start in range(0, len(indices), self.batch_size_per_gpu):
                chunk = indices[start : start + self.batch_size_per_gpu]
                for index, text in zip(chunk, self._generate_batch([requests[i] for i in chunk], generate_kwargs),
                                       strict=True):  # fmt: skip
                    results[index] = truncate_at_stop(text, until)
        logger.info("llava_ov_encoder: generated %d answers; %s; %s", len(requests), self.videos.summary(),
                    self._missing_summary())  # fmt: skip
        return [text or "" for text in results]

    def _generate_batch(self, requests: Sequence[Instance], generate_kwargs: dict[str, Any]) -> list[str]:
        """Answers of one batch; a document whose media is missing gets "" (scored as failed) or stops the run."""
        conversations, images, videos, kept = [], [], [], []
        for position, request in enumerate(requests):
            context, _, doc_to_visual, doc_id, task, split = request.args
            try:
                conversation, sample_images, sample_videos = self._sample(
                    context, self._docs_visuals(doc_to_visual, doc_id, task, split)
                )
            except MissingMediaError as error:
                self._missing(error, task=task, doc_id=doc_id)
                continue
            conversations.append(conversation)
            images.append(sample_images)
            videos.append(sample_videos)
            kept.append(position)
        answers = [""] * len(requests)
        if kept:
            for position, text in zip(kept, self._generate_kept(conversations, images, videos, generate_kwargs),
                                      strict=True):  # fmt: skip
                answers[position] = text
        return answers

    def _generate_kept(self, conversations: list, images: list, videos: list, generate_kwargs: dict[str, Any]
                       ) -> list[str]:  # fmt: skip
        batch = self.processor(conversations=conversations, images=images, videos=videos, add_generation_prompt=True,
                               padding_side="left")  # fmt: skip
        inputs = self._to_device(batch)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(**inputs, **generate_kwargs, pad_token_id=tokenizer.pad_token_id)
        return self.processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    # ------------------------------------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """Per request (loss = -log p(continuation | context, visuals), is_greedy), wrapped in `GenerationResult`:
        lmms-eval 0.7.x turns bare tuples into strings before scoring (spec section 5.1); `multiple_choice` takes
        the argmin of the losses (section 5.2)."""
        results: list[GenerationResult] = []
        for start in range(0, len(requests), self.batch_size_per_gpu):
            for loss, greedy in self._loglikelihood_batch(requests[start : start + self.batch_size_per_gpu]):
                results.append(GenerationResult(text=(loss, greedy)))
        logger.info("llava_ov_encoder: scored %d continuations; %s; %s", len(requests), self.videos.summary(),
                    self._missing_summary())  # fmt: skip
        return results

    def _loglikelihood_batch(self, requests: Sequence[Instance]) -> list[tuple[float, bool]]:
        """(loss, is_greedy) per request; a document whose media is missing gets (inf, False): every choice of it
        then ties, which multiple choice cannot score as failed (argmin takes the first), so it is logged and
        counted like the rest."""
        tokenizer = self.processor.tokenizer
        samples, spans, kept = [], [], []
        missing_docs: set[tuple[str, int]] = set()
        for position, request in enumerate(requests):
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            if (task, doc_id) in missing_docs:
                continue
            try:
                conversation, images, videos = self._sample(
                    context, self._docs_visuals(doc_to_visual, doc_id, task, split)
                )
            except MissingMediaError as error:
                missing_docs.add((task, doc_id))
                self._missing(error, task=task, doc_id=doc_id)
                continue
            kept.append(position)
            # Same visual path and prompt as generation; the continuation follows the assistant header.
            sample = self.processor.process_conversation(conversation, images=images, videos=videos,
                                                         add_generation_prompt=True, return_labels=False)  # fmt: skip
            continuation_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
            if not continuation_ids:
                raise ValueError(f"{task} doc {doc_id}: empty continuation {continuation!r}")
            prompt_length = len(sample["input_ids"])
            ids = torch.cat([sample["input_ids"], torch.tensor(continuation_ids, dtype=torch.long)])
            sample["input_ids"], sample["attention_mask"] = ids, torch.ones_like(ids)
            samples.append(sample)
            spans.append((prompt_length, len(continuation_ids)))
        results: list[tuple[float, bool]] = [(float("inf"), False)] * len(requests)
        if not samples:
            return results
        batch = self._to_device(self.processor.pad(samples, padding_side="right"))
        with torch.inference_mode():
            logits = self.model(**batch).logits.float()  # (B, L, V)
        for row, (prompt_length, length) in enumerate(spans):
            # Position p predicts token p + 1: the continuation's logits start one before it.
            row_logits = logits[row, prompt_length - 1 : prompt_length - 1 + length]  # (length, V)
            targets = batch["input_ids"][row, prompt_length : prompt_length + length]
            log_probs = torch.log_softmax(row_logits, dim=-1)
            loss = -float(log_probs.gather(-1, targets[:, None]).sum())
            greedy = bool((row_logits.argmax(-1) == targets).all())
            results[kept[row]] = (loss, greedy)
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        raise NotImplementedError("llava_ov_encoder does not implement multi-round generation")

    def clean(self) -> None:
        """End of the run: the video path counts (the evaluator calls this once after all requests)."""
        logger.info("llava_ov_encoder: end of run, %s; %s", self.videos.summary(), self._missing_summary())
        for line in self.missing_media:
            logger.warning("missing media: %s", line)
        super().clean()


def _distributed_setup(device: str | None) -> tuple[int, int, str, Any]:
    """(rank, world_size, device, accelerator or None). With several processes (`accelerate launch` or `torchrun`:
    both set WORLD_SIZE) every process holds the whole model and answers its share of the requests; each takes its
    local GPU, or on the CPU joins a gloo process group (set up here before `Accelerator()`, which then adopts it,
    so that ranks are 0..N-1 and the evaluator's gathers work)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return 0, 1, device, None
    import torch.distributed as dist
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    on_gpu = torch.cuda.is_available() and not str(device or "").startswith("cpu")
    if on_gpu:
        accelerator = Accelerator()
    else:
        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        if AcceleratorState._shared_state.get("num_processes", world_size) != world_size:
            # lmms-eval's CLI built an Accelerator() before us; on the CPU under torchrun it took the run for a
            # single process (every rank "rank 0", every rank the main process). Rebuild the shared state as
            # MULTI_CPU on the gloo group so that lmms-eval's later Accelerator() calls agree with the ranks.
            AcceleratorState._reset_state(reset_partial_state=True)
        accelerator = Accelerator(cpu=True)
    device = f"cuda:{accelerator.local_process_index}" if on_gpu else "cpu"
    rank, size = accelerator.process_index, accelerator.num_processes
    if size != world_size:
        raise RuntimeError(f"WORLD_SIZE={world_size} but the process group has {size} processes (rank {rank})")
    return rank, size, device, accelerator


def _ensure_log_handler() -> None:
    """The per-video lines are INFO: give the `llava.eval` logger a stderr handler when nothing is configured (the
    lmms-eval CLI logs with loguru, so Python logging would otherwise drop them)."""
    package_logger = logging.getLogger("llava.eval")
    if not package_logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.INFO)


__all__ = ["LlavaOVEncoder", "split_visuals", "truncate_at_stop"]
