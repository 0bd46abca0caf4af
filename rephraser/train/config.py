"""TrainConfig: the fine-tuner's one configuration (defaults -> --config file.yaml -> CLI flags).

Defaults are the study's recipe (FastChat/HF Trainer: lr 2e-5, weight decay 0, betas (0.9, 0.95), 5 % warmup,
cosine decay, loss on every token not marked ignore), with padding-free packing instead of its padded batches.
Process count, mixed precision and FSDP/DDP belong to the launcher (`accelerate launch --config_file ...`).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field

from rephraser.config import check_choice, check_positive
from rephraser.data.tokfile import MAX_SEQ_LEN
from rephraser.errors import ConfigError

# Fields that may change between a run and its resumption: they do not change what is trained.
OPERATIONAL_FIELDS = ("resume", "save_every", "keep_last", "log_every", "report_to", "export_adapter")
ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2")
TRACKERS = ("tensorboard", "wandb", "mlflow", "all", "none")


def setting(default=MISSING, help: str = ""):
    """One TrainConfig field on one line: `lr: float = setting(2e-5, "peak learning rate")`. The help is the
    flag's help text, through rephraser.config's `metadata={"help": ...}` as for every other config."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Fine-tune a causal LM on token files (accelerate launch -m rephraser.train ...)."""

    # What to train, on what, and where
    model: str = setting(help="HF model directory or hub id to start from")
    data: list[str] = setting(help="token files (.tok) from `rephraser tokenize`, padded or ragged")
    output_dir: str = setting(help="checkpoints, logs, the resolved config and the final HF model")
    # How long
    epochs: float | None = setting(None, "passes over the data (the study: 16-64)")
    max_steps: int | None = setting(None, "optimizer steps; overrides --epochs")
    # Optimizer and schedule (the study's recipe)
    lr: float = setting(2e-5, "peak learning rate")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    beta1: float = setting(0.9, "AdamW beta1")
    beta2: float = setting(0.95, "AdamW beta2")
    warmup_ratio: float = setting(0.05, "share of steps with linear warmup")
    lr_schedule: str = setting("cosine", "cosine | linear | constant (after warmup)")
    max_grad_norm: float = setting(1.0, "gradient clipping (0 = off)")
    seed: int = setting(42, "data order and initialisation seed")
    # Batches
    packing: bool = setting(True, "pack samples into rows, no attention across samples (--no-packing: padded)")
    max_seq_len: int = setting(1536, "row length: packed rows and padded samples")
    micro_batch_rows: int = setting(8, "rows per micro-batch per process (the study: 1)")
    grad_accum: int = setting(1, "micro-batches per optimizer step")
    # Checkpoints and logs
    save_every: int = setting(500, "checkpoint every N optimizer steps (0 = only at the end)")
    keep_last: int = setting(2, "checkpoints kept")
    resume: str = setting("auto", "auto (latest complete checkpoint) | none | a checkpoint dir")
    log_every: int = setting(10, "steps between tracker log points")
    report_to: str = setting("tensorboard", "tensorboard | wandb | mlflow | all | none (WANDB_MODE=offline works)")
    # Speed and memory
    attn_implementation: str = setting("sdpa", "sdpa | eager | flex_attention (fast on H100/H200) | flash_attention_2")
    gradient_checkpointing: bool = setting(False, "recompute each decoder layer in the backward: less memory")
    compile: bool | None = setting(None, "torch.compile each decoder layer (default: on with CUDA, off on CPU)")
    loss_chunk_tokens: int = setting(2048, "loss over N tokens at a time, no full logits (0: the model's own loss)")
    # LoRA (peft)
    lora_r: int = setting(0, "LoRA rank (peft); 0 = full fine-tuning")
    lora_alpha: float = setting(16.0, "LoRA alpha")
    lora_dropout: float = setting(0.0, "LoRA dropout")
    lora_target_modules: list[str] | None = setting(None, "modules to adapt (default: peft's; 'all-linear' works)")
    export_adapter: bool = setting(False, "also write the adapter alone (OUTPUT_DIR/adapter); the merged model always")

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
