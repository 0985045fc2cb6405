"""Training arguments: three dataclasses parsed from a YAML config plus command-line overrides.

Which parts train is a set of explicit flags (``train_language_model``, ``train_projector``,
``train_vision_tower``), not a parsed string; each part has its own learning rate. DeepSpeed and LoRA are
configured here, never by code branches in the entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

CONFIG_DIR = __file__.rsplit("/", 1)[0] + "/configs"


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "a LLaVA-OV checkpoint folder (ours or upstream-trained); else assemble"}
    )
    vision_tower: str | None = field(default=None, metadata={"help": "OneVision-Encoder folder (assembly)"})
    language_model: str | None = field(default=None, metadata={"help": "Qwen3 folder (assembly)"})
    pretrained_projector: str | None = field(
        default=None,
        metadata={
            "help": "stage-1 projector: our multi_modal_projector.safetensors (or the stage-1 output folder), or "
            "upstream mm_projector.bin (a pickle: needs allow_pickle)"
        },
    )
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "also read pickle weights (pytorch_model.bin, mm_projector.bin); only for files you trust"},
    )
    vision_feature_layer: int = field(default=-2, metadata={"help": "encoder layer whose output feeds the LLM"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2"})


@dataclass
class DataArguments:
    data_path: str = field(default="", metadata={"help": "JSON/JSONL manifest or YAML mixture"})
    image_folder: str | None = field(default=None, metadata={"help": "root for relative media paths"})
    template: str = field(default="chatml", metadata={"help": "chatml (SFT) or plain (stage-1 captions)"})
    model_max_length: int = field(default=16384, metadata={"help": "longest sequence, visual tokens included"})
    packing: bool = field(default=False, metadata={"help": "pack the samples of a batch into one row (no padding)"})
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": "token-budget batches (needs packing): each batch is one row filled to this many tokens with "
            "cost-grouped samples, per rank; replaces per_device_train_batch_size"
        },
    )
    group_by_cost: bool = field(
        default=True, metadata={"help": "length-grouped sampling on real token cost (text + visual)"}
    )
    skip_bad_samples: bool = field(
        default=False, metadata={"help": "skip and count malformed manifest lines instead of failing"}
    )


@dataclass
class LlavaTrainingArguments(TrainingArguments):
    train_language_model: bool = field(default=True, metadata={"help": "train the Qwen3 LM (embeddings, lm_head)"})
    train_projector: bool = field(default=True, metadata={"help": "train the vision-language projector"})
    train_vision_tower: bool = field(default=False, metadata={"help": "train the OneVision-Encoder"})
    projector_lr: float | None = field(default=None, metadata={"help": "projector LR (default: learning_rate)"})
    vision_tower_lr: float | None = field(default=None, metadata={"help": "vision tower LR (default: learning_rate)"})
    lora_enable: bool = field(default=False, metadata={"help": "LoRA on the LM; projector trained and saved in full"})
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    save_projector_only: bool = field(
        default=False,
        metadata={"help": "stage 1: also save the projector alone (multi_modal_projector.safetensors)"},
    )
    remove_unused_columns: bool = False  # our collator consumes lists of visual items the Trainer must not drop
