"""TrainConfig: the fine-tuner's one configuration (defaults -> --config file.yaml -> CLI flags).

Defaults are the study's recipe (FastChat/HF Trainer: lr 2e-5, weight decay 0, betas (0.9, 0.95), 5 % warmup,
cosine decay, loss on every token not marked ignore), with padding-free packing instead of its padded batches.
Process count, mixed precision and FSDP/DDP belong to the launcher (`accelerate launch --config_file ...`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from rephraser.config import check_choice, check_positive
from rephraser.data.tokfile import MAX_SEQ_LEN
from rephraser.errors import ConfigError

# Fields that may change between a run and its resumption: they do not change what is trained.
OPERATIONAL_FIELDS = ("resume", "save_every", "keep_last", "log_every", "report_to", "export_adapter")
ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2")
TRACKERS = ("tensorboard", "wandb", "mlflow", "all", "none")


@dataclass
class TrainConfig:
    """Fine-tune a causal LM on token files (accelerate launch -m rephraser.train ...)."""

    model: str = field(metadata={"help": "HF model directory or hub id to start from"})
    data: list[str] = field(metadata={"help": "token files (.tok) from `rephraser tokenize`, padded or ragged"})
    output_dir: str = field(metadata={"help": "checkpoints, logs, the resolved config and the final HF model"})
    epochs: float | None = field(default=None, metadata={"help": "passes over the data (the study: 16-64)"})
    max_steps: int | None = field(default=None, metadata={"help": "optimizer steps; overrides --epochs"})
    lr: float = field(default=2e-5, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    beta2: float = field(default=0.95, metadata={"help": "AdamW beta2"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps with linear warmup"})
    lr_schedule: str = field(default="cosine", metadata={"help": "cosine | linear | constant (after warmup)"})
    packing: bool = field(
        default=True,
        metadata={
            "help": "pack samples into rows (no cross-sample attention); "
            "--no-packing pads each sample to --max-seq-len as the study"
        },
    )
    max_seq_len: int = field(default=1536, metadata={"help": "row length: packed rows and padded samples"})
    micro_batch_rows: int = field(default=8, metadata={"help": "rows per micro-batch per process (the study: 1)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    seed: int = field(default=42, metadata={"help": "data order and initialisation seed"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every N optimizer steps (0 = only at the end)"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: str = field(
        default="auto", metadata={"help": "auto (latest complete checkpoint) | none | a checkpoint dir"}
    )
    log_every: int = field(default=10, metadata={"help": "steps between tracker log points"})
    report_to: str = field(
        default="tensorboard",
        metadata={
            "help": "tensorboard | wandb | mlflow | all | none "
            "(accelerate's trackers; WANDB_MODE=offline works offline)"
        },
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={
            "help": "sdpa | eager | flex_attention (torch's own: the fast path on H100/H200) | flash_attention_2"
        },
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    compile: bool | None = field(
        default=None, metadata={"help": "torch.compile each decoder layer (default: on with CUDA, off on CPU)"}
    )
    loss_chunk_tokens: int = field(
        default=2048,
        metadata={
            "help": "cross-entropy over this many tokens at a time, logits "
            "recomputed in backward: memory no longer grows with "
            "vocab x tokens (0 = all at once)"
        },
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (peft); 0 = full fine-tuning"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "modules to adapt (default: peft's for the architecture; 'all-linear' works)"}
    )
    export_adapter: bool = field(
        default=False,
        metadata={
            "help": "LoRA: also write the adapter alone (OUTPUT_DIR/adapter); the merged full model is always exported"
        },
    )

    def __post_init__(self):
        if isinstance(self.data, str):
            self.data = [self.data]
        if not self.data:
            raise ConfigError("data: give at least one .tok file")
        if self.epochs is None and self.max_steps is None:
            raise ConfigError("epochs / max_steps: give --epochs E or --max-steps S")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs: expected a positive number, got {self.epochs!r}")
        if self.max_steps is not None:
            check_positive("max_steps", self.max_steps)
        check_positive("max_seq_len", self.max_seq_len, maximum=MAX_SEQ_LEN)
        for name in ("micro_batch_rows", "grad_accum", "keep_last", "log_every"):
            check_positive(name, getattr(self, name))
        check_positive("save_every", self.save_every, allow_zero=True)
        check_choice("lr_schedule", self.lr_schedule, ("cosine", "linear", "constant"))
        check_choice("attn_implementation", self.attn_implementation, ATTENTION)
        check_choice("report_to", self.report_to, TRACKERS)
        check_positive("loss_chunk_tokens", self.loss_chunk_tokens, allow_zero=True)
        check_positive("lora_r", self.lora_r, allow_zero=True)
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout: expected 0 <= x < 1, got {self.lora_dropout}")
        if self.export_adapter and not self.lora_r:
            raise ConfigError("export_adapter: only with --lora-r > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio: expected 0 <= x < 1, got {self.warmup_ratio}")

    def total_steps(self, micro_batches_per_epoch: int) -> int:
        """Optimizer steps: --max-steps, else ceil(epochs * micro-batches per epoch per process / grad_accum).

        `micro_batches_per_epoch` is per process: the packed rows of one epoch divided over the processes
        (the study's rule `batch * steps * nproc = samples * epochs`, in rows instead of samples)."""
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * micro_batches_per_epoch / self.grad_accum))

    def warmup_steps(self, total: int) -> int:
        return math.ceil(self.warmup_ratio * total)

    def use_compile(self) -> bool:
        import torch

        return torch.cuda.is_available() if self.compile is None else self.compile

    def run_fields(self) -> dict:
        """The settings that define what is trained (model and data are compared by identity, not spelling)."""
        return {k: v for k, v in asdict(self).items() if k not in OPERATIONAL_FIELDS + ("model", "data", "output_dir")}
