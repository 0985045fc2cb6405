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
from transformers.trainer_utils import get_last_checkpoint

from llava.data import LengthGroupedSampler, LlavaOVCollator, LlavaOVDataset, load_manifest
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor, OneVisionEncoderImageProcessor
from llava.model.llava_ov.conversion import assemble_from_pretrained, load_upstream_checkpoint

from .arguments import CONFIG_DIR, DataArguments, LlavaTrainingArguments, ModelArguments
from .param_groups import set_trainable_parts
from .trainer import LlavaTrainer

logger = logging.getLogger("llava.train")


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, LlavaTrainingArguments]:
    """``[CONFIG.yaml] [--field value ...]``: YAML values become defaults, flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, LlavaTrainingArguments))
    if argv and argv[0].endswith((".yaml", ".yml")):
        path = Path(argv.pop(0))
        if not path.is_file():
            path = Path(CONFIG_DIR) / path.name
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
    """LoRA adapters on the LM's projections only; the projector is trained and saved in full."""
    from peft import LoraConfig, get_peft_model  # the [train] extra

    targets = "|".join(args.lora_target_modules)
    config = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=rf"model\.language_model\..*\.({targets})", modules_to_save=["multi_modal_projector"],
        task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config)


def _share_process_group_with_deepspeed(training_args: LlavaTrainingArguments) -> None:
    """On CPU (gloo) the Trainer starts torch.distributed but DeepSpeed does not adopt it, so ZeRO-3's
    partitioned init would see one process; hand it the existing group (a no-op on GPU, where it already has it)."""
    if training_args.deepspeed and torch.distributed.is_available() and torch.distributed.is_initialized():
        import deepspeed  # the [train] extra

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())


def main(argv: list[str] | None = None) -> Path:
    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.INFO if training_args.should_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    set_seed(training_args.seed)
    _share_process_group_with_deepspeed(training_args)
    model, processor = load_model_and_processor(model_args, data_args, training_args)
    counts = set_trainable_parts(
        model, language_model=training_args.train_language_model and not training_args.lora_enable,
        projector=training_args.train_projector, vision_tower=training_args.train_vision_tower,
    )  # fmt: skip
    logger.info("trainable parameters by part: %s", counts)
    if training_args.lora_enable:
        model = apply_lora(model, training_args)
        model.print_trainable_parameters()
    if training_args.gradient_checkpointing and not training_args.train_language_model:
        # Frozen embeddings give checkpointed blocks inputs without grad: make them require it.
        model.enable_input_require_grads()

    manifest = load_manifest(
        data_args.data_path, image_folder=data_args.image_folder, seed=training_args.seed,
        on_bad_line="skip" if data_args.skip_bad_samples else "raise",
    )  # fmt: skip
    dataset = LlavaOVDataset(
        manifest, processor, max_length=data_args.model_max_length, skip_bad_samples=data_args.skip_bad_samples
    )
    sampler = None
    if data_args.group_by_cost:
        batch = training_args.per_device_train_batch_size * training_args.world_size
        sampler = LengthGroupedSampler(
            dataset.token_costs(), batch_size=batch * training_args.gradient_accumulation_steps,
            seed=training_args.seed,
        )  # fmt: skip
    collator = LlavaOVCollator(pad_token_id=processor.tokenizer.pad_token_id, packing=data_args.packing)
    trainer = LlavaTrainer(
        model=model, args=training_args, train_dataset=dataset, data_collator=collator, processing_class=processor,
        train_sampler=sampler,
    )  # fmt: skip
    resume = training_args.resume_from_checkpoint
    if resume is None and Path(training_args.output_dir).is_dir():
        resume = get_last_checkpoint(training_args.output_dir)  # an interrupted run continues where it stopped
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
