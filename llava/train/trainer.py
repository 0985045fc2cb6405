"""The transformers Trainer with our additions: per-part learning rates, cost-grouped sampling or token-budget
batches (with the packed rows' fill ratio in the log), the projector file of stage 1. Everything else (DeepSpeed,
gradient accumulation, resume, bf16) is the stock Trainer."""

from __future__ import annotations

import logging
import math
import os
from functools import partial
from pathlib import Path

import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.trainer_utils import seed_worker

from llava.data import TokenBudgetBatchSampler
from llava.model.llava_ov.conversion import save_projector
from llava.model.llava_ov.processing_llava_ov import IGNORE_INDEX

from .arguments import LlavaTrainingArguments
from .param_groups import optimizer_groups

logger = logging.getLogger(__name__)
# Where a LoRA run's adapters go once the merged model is the output folder's checkpoint (`save_merged_model`).
ADAPTER_DIR = "adapter"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "README.md")


def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p (int64 [k]) whose next label ``labels[:, p + 1]`` is supervised in at least one row."""
    return (labels[:, 1:] != IGNORE_INDEX).any(0).nonzero().squeeze(1)


def supervised_logits_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Causal-LM cross entropy from the logits of the supervised positions only.

    The stock loss takes logits at every position: [tokens, 151936] in bf16, their fp32 upcast, log-softmax and
    gradient are ~2 MB per token, ~70 GB for a 32K-token packed row (docs/real_scale.md), although only the answer
    tokens are supervised. With
    ``logits_to_keep = supervised_positions(labels)`` (what `LlavaTrainer.compute_loss` passes) the model computes
    the rows the loss reads and nothing else; the value is the stock one (sum over supervised tokens divided by
    `num_items_in_batch`, else their mean). Full-length logits (evaluation) are shifted as usual.
    """
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
    labels = labels.to(logits.device)
    if logits.shape[1] == labels.shape[1]:
        logits, targets = logits[:, :-1], labels[:, 1:]
    else:
        targets = labels[:, supervised_positions(labels) + 1]
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    if num_items_in_batch is None:
        return loss / (targets != IGNORE_INDEX).sum()
    return loss / num_items_in_batch


class LlavaTrainer(Trainer):
    args: LlavaTrainingArguments

    def __init__(self, *args, train_sampler: Sampler | None = None, **kwargs) -> None:
        """`train_sampler`: a sampler of indices (`LengthGroupedSampler`), or a `TokenBudgetBatchSampler` whose
        batches (one packed row each) replace `per_device_train_batch_size`."""
        if kwargs.get("compute_loss_func") is None:
            kwargs["compute_loss_func"] = supervised_logits_loss
        super().__init__(*args, **kwargs)
        self._cost_sampler = train_sampler
        self._row_tokens = 0  # tokens in the packed rows since the last log line (token-budget batches)
        self._row_count = 0

    @property
    def _budget_sampler(self) -> TokenBudgetBatchSampler | None:
        return self._cost_sampler if isinstance(self._cost_sampler, TokenBudgetBatchSampler) else None

    def _get_train_sampler(self, train_dataset=None) -> Sampler | None:
        if self._cost_sampler is not None:
            return self._cost_sampler
        return super()._get_train_sampler(train_dataset)

    def get_train_dataloader(self) -> DataLoader:
        """The stock loader, except with a `TokenBudgetBatchSampler`: that is passed as `batch_sampler`."""
        sampler = self._budget_sampler
        if sampler is None:
            return super().get_train_dataloader()
        args = self.args
        params = {
            "batch_sampler": sampler,
            "collate_fn": self._get_collator_with_removed_columns(self.data_collator, description="Training"),
            "num_workers": args.dataloader_num_workers,
            "pin_memory": args.dataloader_pin_memory,
            "persistent_workers": args.dataloader_persistent_workers,
            "prefetch_factor": args.dataloader_prefetch_factor,
            "worker_init_fn": partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        }
        loader = self.accelerator.prepare(DataLoader(self.train_dataset, **params))
        # The sampler already deals rows to ranks; accelerate's shard wrapper would deal them again (each rank
        # keeping 1/world of its own rows). Make the wrapper a pass-through, as transformers does for its own
        # rank-aware `BatchRebalanceSampler`.
        shard = getattr(loader, "batch_sampler", None)
        if isinstance(shard, BatchSamplerShard) and shard.batch_sampler is sampler:
            shard.num_processes, shard.process_index = 1, 0
        return loader

    def get_resumed_dataloader(self, dataloader: DataLoader, num_batches: int) -> DataLoader:
        """Mid-epoch resume: the skipping wrapper hides the sampler from the Trainer's `set_epoch`, so set the
        resumed epoch here (the restored `state.epoch` is epoch + fraction done)."""
        sampler = self._budget_sampler or self._cost_sampler
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(math.floor(self.state.epoch))
        return super().get_resumed_dataloader(dataloader, num_batches)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The stock loss step, with the logits limited to the supervised positions (see `supervised_logits_loss`)."""
        if self.compute_loss_func is supervised_logits_loss and "labels" in inputs and not return_outputs:
            # Without labels the model would default to a cache in eval mode, which hides packed rows' resets.
            inputs = {**inputs, "logits_to_keep": supervised_positions(inputs["labels"]), "use_cache": False}
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        if self._budget_sampler is not None:
            # One packed row per batch (the collator packs the whole batch): its length is its token count.
            self._row_tokens += int(inputs["input_ids"].numel())
            self._row_count += int(inputs["input_ids"].shape[0])
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds `fill_ratio` (tokens / budget of the packed rows since the last log line) with token budgets."""
        sampler = self._budget_sampler
        if sampler is not None and self._row_count and "loss" in logs:
            logs["fill_ratio"] = round(self._row_tokens / (self._row_count * sampler.max_tokens), 4)
            self._row_tokens = self._row_count = 0
        super().log(logs, start_time)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """AdamW (or ``args.optim``) over per-part groups: LM at ``learning_rate``, projector at ``projector_lr``,
        vision tower at ``vision_tower_lr``; no weight decay on biases and norms."""
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        groups = optimizer_groups(
            opt_model.named_parameters(),
            decay_names=set(self.get_decay_parameter_names(opt_model)),
            learning_rate=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            projector_lr=self.args.projector_lr,
            vision_tower_lr=self.args.vision_tower_lr,
        )
        for group in groups:
            count = sum(p.numel() for p in group["params"])
            logger.info("optimizer group %s: %d params, lr %g, wd %g", group["name"], count, group["lr"],
                        group["weight_decay"])  # fmt: skip
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The stock save (weights, config, processor files: the folder opens with ``from_pretrained`` like any
        checkpoint); stage 1 (``save_projector_only``) also writes the projector alone, the file stage 2 reads."""
        super()._save(output_dir, state_dict)
        if not self.args.save_projector_only or not self.args.should_save:
            return None
        output_dir = output_dir or self.args.output_dir
        model = self.accelerator.unwrap_model(self.model)
        path = save_projector(model, output_dir, state_dict=state_dict)
        logger.info("saved the projector to %s", path)
        return None

    def save_merged_model(self, output_dir: str | None = None) -> None:
        """After a LoRA run: the model with the adapters merged in becomes the folder's checkpoint (weights + config;
        the processor files are there already), so that it opens with ``from_pretrained`` like any other; the
        adapters move to ``adapter/`` (``PeftModel.from_pretrained(base, OUT/adapter)``), since transformers would
        otherwise apply adapter files found beside full weights a second time. Call once, when training is over
        (merging changes the model in place)."""
        output_dir = Path(output_dir or self.args.output_dir)
        if is_deepspeed_zero3_enabled():
            # The LM's weights are partitioned across ranks here; merging would see empty shards.
            logger.warning("ZeRO-3 LoRA run: %s holds the adapters only (merge them with peft after training)",
                           output_dir)  # fmt: skip
            return
        if not self.args.should_save:
            return
        adapter_dir = output_dir / ADAPTER_DIR
        adapter_dir.mkdir(exist_ok=True)
        for name in ADAPTER_FILES:
            if (output_dir / name).is_file():
                os.replace(output_dir / name, adapter_dir / name)
        merged = self.accelerator.unwrap_model(self.model).merge_and_unload()
        merged.save_pretrained(output_dir)
        logger.info("saved the model with the LoRA adapters merged to %s (adapters in %s)", output_dir, adapter_dir)
