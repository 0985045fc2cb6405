"""SFT / stage-1 entry point: ``python -m llava.train CONFIG.yaml [--field value ...]``.

The YAML file sets the fields of :class:`ModelArguments`, :class:`DataArguments` and
:class:`LlavaTrainingArguments`; command-line flags override it. Launch with ``torchrun`` or the ``deepspeed``
launcher for several processes (``--deepspeed llava/train/configs/zero3.json``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch
import yaml
from transformers import AutoTokenizer, HfArgumentParser, set_seed

from llava.data import (
    LengthGroupedSampler,
    LlavaOVCollator,
    LlavaOVDataset,
    TokenBudgetBatchSampler,
    load_manifest,
)
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor, OneVisionEncoderImageProcessor
from llava.model.llava_ov.conversion import assemble_from_pretrained, load_upstream_checkpoint

from .arguments import CONFIG_DIR, DataArguments, LlavaTrainingArguments, ModelArguments
from .checkpoints import last_complete_checkpoint
from .param_groups import set_trainable_parts, trainable_counts
from .trainer import LlavaTrainer

logger = logging.getLogger("llava.train")


def resolve_config_path(name: str) -> Path:
    """A YAML config path as given; a bare file name that is not in the working directory names a shipped config
    (``sft_tiny.yaml`` from anywhere), said in the log. A path with folders that does not exist is an error, never
    swapped for the shipped config of the same name."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = Path(CONFIG_DIR) / path.name
    if path.name == name and shipped.is_file():
        logger.warning("config %s is not in %s: using the shipped %s", name, Path.cwd(), shipped)
        return shipped
    known = ", ".join(sorted(config.name for config in Path(CONFIG_DIR).glob("*.yaml")))
    raise FileNotFoundError(f"config file not found: {name} (shipped configs, by bare name: {known})")


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, LlavaTrainingArguments]:
    """``[CONFIG.yaml] [--field value ...]``: YAML values become defaults, flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, LlavaTrainingArguments))
    if argv and argv[0].endswith((".yaml", ".yml")):
        path = resolve_config_path(argv.pop(0))
        values = yaml.safe_load(path.read_text()) or {}
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown fields {unknown}")
        parser.set_defaults(**values)
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    return model_args, data_args, training_args


def _dtype(training_args: LlavaTrainingArguments) -> torch.dtype:
    if training_args.bf16:
        return torch.bfloat16
    return torch.float16 if training_args.fp16 else torch.float32


def load_model_and_processor(
    model_args: ModelArguments, data_args: DataArguments, training_args: LlavaTrainingArguments
) -> tuple[LlavaOVForConditionalGeneration, LlavaOVProcessor]:
    """Our checkpoint, an upstream-trained one (key map), or an assembly of encoder + Qwen3 (+ stage-1 projector)."""
    dtype, attn = _dtype(training_args), model_args.attn_implementation
    if model_args.model_name_or_path:
        folder = Path(model_args.model_name_or_path)
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") == "llava_ov":
            model = LlavaOVForConditionalGeneration.from_pretrained(
                folder, dtype=dtype, attn_implementation=attn, allow_pickle=model_args.allow_pickle
            )
            processor = LlavaOVProcessor.from_pretrained(folder, template=_template(data_args))
            return model, processor
        model = load_upstream_checkpoint(
            folder, dtype=dtype, attn_implementation=attn, allow_pickle=model_args.allow_pickle
        )
        tokenizer_path, vision_path = folder, model_args.vision_tower
    else:
        if not (model_args.vision_tower and model_args.language_model):
            raise ValueError("give model_name_or_path, or both vision_tower and language_model to assemble a model")
        model = assemble_from_pretrained(
            model_args.vision_tower, model_args.language_model, projector_path=model_args.pretrained_projector,
            vision_feature_layer=model_args.vision_feature_layer, dtype=dtype, attn_implementation=attn,
            allow_pickle=model_args.allow_pickle,
        )  # fmt: skip
        tokenizer_path, vision_path = model_args.language_model, model_args.vision_tower
    if vision_path:
        image_processor = OneVisionEncoderImageProcessor.from_pretrained(vision_path)
    else:
        image_processor = OneVisionEncoderImageProcessor()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    processor = LlavaOVProcessor(image_processor=image_processor, tokenizer=tokenizer, template=_template(data_args))
    return model, processor


def _template(data_args: DataArguments) -> str:
    return {"chatml": "qwen_1_5", "qwen_1_5": "qwen_1_5", "plain": "plain"}[data_args.template]


def apply_lora(model: LlavaOVForConditionalGeneration, args: LlavaTrainingArguments):
    """LoRA adapters on the LM's projections; the projector (``train_projector``) and the vision tower
    (``train_vision_tower``) are trained and saved in full as PEFT ``modules_to_save`` (PEFT freezes everything
    else, so a part left out here would silently stop training). PEFT keeps a frozen copy of each such module."""
    from peft import LoraConfig, get_peft_model  # the [train] extra

    targets = "|".join(args.lora_target_modules)
    full = [name for name, wanted in (("multi_modal_projector", args.train_projector),
                                      ("vision_tower", args.train_vision_tower)) if wanted]  # fmt: skip
    config = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=rf"model\.language_model\..*\.({targets})", modules_to_save=full or None,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config)


def prepare_trainable(model: LlavaOVForConditionalGeneration, args: LlavaTrainingArguments):
    """Freezes / unfreezes the parts as flagged (LoRA: adapters on the LM), returns the model (PEFT-wrapped with
    LoRA) and {part: trainable parameter count} as it will train, i.e. counted after PEFT."""
    if args.lora_enable and not args.train_language_model:
        raise ValueError("lora_enable trains the language model through adapters: set train_language_model true")
    set_trainable_parts(
        model, language_model=args.train_language_model and not args.lora_enable, projector=args.train_projector,
        vision_tower=args.train_vision_tower,
    )  # fmt: skip
    if args.lora_enable:
        model = apply_lora(model, args)
    return model, trainable_counts(model)


def check_arguments(data_args: DataArguments, training_args: LlavaTrainingArguments) -> None:
    """Combinations that cannot do what they say are errors before anything is loaded."""
    if data_args.max_tokens_per_batch is not None:
        if data_args.max_tokens_per_batch <= 0:
            raise ValueError(f"max_tokens_per_batch must be > 0, got {data_args.max_tokens_per_batch}")
        if not data_args.packing:
            raise ValueError("max_tokens_per_batch needs packing: true (a token-budget batch is one packed row)")


def build_train_sampler(
    costs, *, data_args: DataArguments, training_args: LlavaTrainingArguments
) -> LengthGroupedSampler | TokenBudgetBatchSampler:
    """Token-budget rows (`max_tokens_per_batch`, per rank) or length-grouped samples, on per-sample costs (a plain
    list/array: exact token costs or estimates)."""
    if data_args.max_tokens_per_batch:
        sampler = TokenBudgetBatchSampler(
            costs, max_tokens=data_args.max_tokens_per_batch, seed=training_args.seed,
            num_replicas=training_args.world_size, rank=training_args.process_index,
        )  # fmt: skip
        logger.info(
            "token-budget batches: %d rows of %d tokens per rank and epoch, filled %.1f%% (tokens / budget, by cost); "
            "per_device_train_batch_size (%d) is not used",
            len(sampler), sampler.max_tokens, 100 * sampler.fill_ratio(), training_args.per_device_train_batch_size,
        )  # fmt: skip
        return sampler
    batch = training_args.per_device_train_batch_size * training_args.world_size
    return LengthGroupedSampler(
        costs, batch_size=batch * training_args.gradient_accumulation_steps, seed=training_args.seed
    )


def _share_process_group_with_deepspeed(training_args: LlavaTrainingArguments) -> None:
    """On CPU (gloo) the Trainer starts torch.distributed but DeepSpeed does not adopt it, so ZeRO-3's
    partitioned init would see one process; hand it the existing group (a no-op on GPU, where it already has it)."""
    if training_args.deepspeed and torch.distributed.is_available() and torch.distributed.is_initialized():
        import deepspeed  # the [train] extra

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())


def main(argv: list[str] | None = None) -> Path:
    model_args, data_args, training_args = parse_arguments(argv)
    check_arguments(data_args, training_args)
    logging.basicConfig(
        level=logging.INFO if training_args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    set_seed(training_args.seed)
    _share_process_group_with_deepspeed(training_args)
    model, processor = load_model_and_processor(model_args, data_args, training_args)
    model, counts = prepare_trainable(model, training_args)
    logger.info("trainable parameters by part%s: %s", " (after LoRA)" if training_args.lora_enable else "", counts)
    if training_args.gradient_checkpointing and (training_args.lora_enable or not training_args.train_language_model):
        # Frozen embeddings (LoRA freezes them too) give checkpointed blocks inputs without grad: make them require it.
        model.enable_input_require_grads()

    # The index only; every line is parsed, validated and costed once by `dataset.prepare()` (parallel, cached on
    # disk): rank 0 scans and writes the cache first, the other ranks (and every resume) read it. A bad line stops
    # the run here, before step 0, or is left out and counted with skip_bad_samples.
    manifest = load_manifest(data_args.data_path, image_folder=data_args.image_folder, seed=training_args.seed)
    dataset = LlavaOVDataset(
        manifest, processor, max_length=data_args.model_max_length, skip_bad_samples=data_args.skip_bad_samples
    )
    with training_args.main_process_first(desc="manifest scan"):
        dataset.prepare(progress=training_args.should_log)
    sampler = None
    if data_args.group_by_cost or data_args.max_tokens_per_batch:
        sampler = build_train_sampler(dataset.estimated_costs(), data_args=data_args, training_args=training_args)
    collator = LlavaOVCollator(pad_token_id=processor.tokenizer.pad_token_id, packing=data_args.packing)
    trainer = LlavaTrainer(
        model=model, args=training_args, train_dataset=dataset, data_collator=collator, processing_class=processor,
        train_sampler=sampler,
    )  # fmt: skip
    resume = training_args.resume_from_checkpoint
    if resume is None:
        resume = last_complete_checkpoint(training_args.output_dir)  # an interrupted run continues where it stopped
        if resume:
            logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    if training_args.lora_enable:
        trainer.save_merged_model(training_args.output_dir)  # the folder opens like any checkpoint
    trainer.save_state()
    if dataset.num_skipped:
        logger.warning("skipped %d bad samples (see the log lines above)", dataset.num_skipped)
    logger.info("training done: %s", result.metrics)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Tear the group down before exit: a gloo group left to interpreter shutdown can abort a rank.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return Path(training_args.output_dir)
