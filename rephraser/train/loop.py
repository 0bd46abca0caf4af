"""The fine-tuner: `rephraser train ...`, `python -m rephraser.train ...` (the same command, one process, CPU
included) or `accelerate launch [--config_file configs/accelerate/X.yaml] -m rephraser.train ...`.

    exit_status = train(cfg)      # what rephraser.cli runs for all three: one-line errors, 130 on Ctrl-C

Trainer.run() = setup() (every piece of state, in small named steps), train() (the loop only), export();
cleanup (trackers, process group, the output-dir lock) in `finally`. Loss = sum of token losses / global count
of loss tokens in the optimizer step (all ranks and accumulation steps), so the gradient does not depend on how
the global batch is split; it is computed by rephraser.train.loss without the full logits tensor, checked once
at start-up against the model's own forward loss. SIGTERM and SIGUSR1 (SLURM's preemption warning with
`#SBATCH --signal=USR1@120`) save a checkpoint at the next step boundary and exit with EXIT_PREEMPTED.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import time
from dataclasses import asdict

import torch
from tqdm import tqdm

from rephraser.atomic import atomic_write_text
from rephraser.config import save_config
from rephraser.locking import output_lock
from rephraser.modelref import model_identity, resolve_model
from rephraser.train import checkpoint as ckpt
from rephraser.train.config import TrainConfig
from rephraser.train.data import EpochPlan, TrainData, collate, loss_tokens
from rephraser.train.loss import architecture, check_chunked_loss
from rephraser.train.model import build as build_model
from rephraser.train.model import export as export_model

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving; rerun with --resume auto


def train(cfg: TrainConfig) -> int:
    """The trainer in this process; returns the exit status (EXIT_PREEMPTED after a SIGTERM save)."""
    return Trainer(cfg).run()


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.stop_requested = False

    def run(self) -> int:
        self.accelerator = make_accelerator(self.cfg)
        self.cleanup = contextlib.ExitStack()  # what setup() takes (lock, signal handlers), given back in `finally`
        try:
            if self.accelerator.is_main_process:  # one run per output dir (the lock goes when this process does)
                self.cleanup.enter_context(output_lock(self.cfg.output_dir, "training run"))
            self.setup()
            if self.train():
                return EXIT_PREEMPTED
            self.export()
            return 0
        finally:
            self.accelerator.end_training()  # closes trackers; destroys the process group when distributed
            self.cleanup.close()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Everything train() needs, in order; any refusal comes before the run record is written."""
        self.load_data()
        self.load_model()
        self.plan_steps()
        self.build_optimizer()
        self.resume()
        self.check_loss()
        self.record_run()

    def load_data(self) -> None:
        """Token files; an output dir holding another run's checkpoints is refused before any model is loaded."""
        cfg = self.cfg
        self.model_name = resolve_model(cfg.model)
        self.data = TrainData(cfg.data)
        self.identity = {
            "model": model_identity(self.model_name),
            "data": self.data.identity(),
            "config": cfg.run_fields(),
        }
        ckpt.check_output_dir(cfg.output_dir, self.identity, cfg.resume)
        cut, cut_tokens = self.data.truncation(cfg.max_seq_len)
        if cut:
            self.accelerator.print(
                f"warning: {cut} of {len(self.data)} samples are longer than --max-seq-len {cfg.max_seq_len} and are "
                f"cut to it ({cut_tokens} tokens not trained on); raise --max-seq-len to keep them whole"
            )
        self.truncated = {"samples": cut, "tokens": cut_tokens}

    def load_model(self) -> None:
        """Tokenizer and the LM wrapped in the loss (LoRA, compile); every token id must fit its vocabulary."""
        from transformers import AutoTokenizer

        torch.manual_seed(self.cfg.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        self.model = build_model(self.cfg, self.model_name)
        self.data.check_vocab(self.model.model.config.vocab_size)

    def plan_steps(self) -> None:
        cfg, acc = self.cfg, self.accelerator
        self.plan = EpochPlan(self.data.lengths, cfg.max_seq_len, cfg.packing, cfg.seed)
        self.per_epoch = self.plan.micro_batches_per_epoch(acc.num_processes, cfg.micro_batch_rows)
        self.total_steps = cfg.total_steps(self.per_epoch)

    def build_optimizer(self) -> None:
        """The model prepared for the launcher's setup (DDP / FSDP2), AdamW over what is trainable, the schedule."""
        from transformers import get_scheduler

        cfg, acc = self.cfg, self.accelerator
        self.model = acc.prepare(self.model)
        trainable = [p for p in self.model.parameters() if p.requires_grad]  # LoRA: the adapters only
        optimizer = torch.optim.AdamW(
            trainable,
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            weight_decay=cfg.weight_decay,
            fused=torch.cuda.is_available(),
        )
        self.optimizer = acc.prepare(optimizer)
        # Not acc.prepare(scheduler): that would step it once per process. Registered so save_state keeps it.
        self.scheduler = get_scheduler(
            cfg.lr_schedule if cfg.lr_schedule != "constant" else "constant_with_warmup",
            optimizer,
            cfg.warmup_steps(self.total_steps),
            self.total_steps,
        )
        acc.register_for_checkpointing(self.scheduler)

    def resume(self) -> None:
        acc = self.accelerator
        self.step, self.tokens_seen = 0, 0
        resume_from = ckpt.find_resume_point(self.cfg.output_dir, self.cfg.resume)
        if resume_from is not None:
            state = ckpt.load_checkpoint(acc, resume_from)
            self.step, self.tokens_seen = state["step"], state["tokens_seen"]
            acc.print(f"resumed from {resume_from} at step {self.step}")

    def check_loss(self) -> None:
        """The chunked loss against the model's own forward(labels=...) on the first row of each process's first
        micro-batch (the next micro-batch while those rows hold no loss token): two no-grad forwards of one row,
        in eval mode (no dropout), eager, RNG untouched, so training and an exact resume are unchanged."""
        cfg, acc = self.cfg, self.accelerator
        if not cfg.loss_chunk_tokens:
            return  # the loss is the model's own
        first, end = self.step * cfg.grad_accum, self.total_steps * cfg.grad_accum
        if first >= end:
            return  # resumed at the last step: nothing left to train
        for m in range(first, min(first + self.per_epoch, end)):
            row = {k: v[:1].to(acc.device) for k, v in self.micro_batch(m).items()}
            ours, model = self.loss_sums(row)
            sums = acc.reduce(torch.tensor([ours, model, float(loss_tokens(row))], device=acc.device), reduction="sum")
            ours, model, tokens = sums.tolist()
            if tokens:
                name = architecture(acc.unwrap_model(self.model))
                difference = check_chunked_loss(name, ours, model, int(tokens), acc.mixed_precision != "no")
                acc.print(
                    f"loss check: the chunked loss is {name}'s own within {difference:.1e} ({int(tokens)} tokens)"
                )
                return
        acc.print("warning: loss check skipped: the first rows of an epoch's micro-batches hold no loss token")

    def loss_sums(self, batch: dict) -> tuple[float, float]:
        """(chunked loss sum, the model's own forward loss sum) of one batch, changing no state."""
        devices = [self.accelerator.device] if self.accelerator.device.type == "cuda" else []
        self.model.eval()
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices), torch.compiler.set_stance("force_eager"):
                return float(self.model(**batch)), float(self.model(**batch, reference=True))
        finally:
            self.model.train()

    def record_run(self) -> None:
        """run.json (what a resumption must match), the resolved config, trackers, the stop signals."""
        cfg, acc = self.cfg, self.accelerator
        acc.print(
            f"{len(self.data)} samples in {len(self.plan.packed)} rows of <= {cfg.max_seq_len} tokens; "
            f"{acc.num_processes} process(es) x {cfg.micro_batch_rows} rows x {cfg.grad_accum} accumulation; "
            f"{self.per_epoch} micro-batches per epoch per process; {self.total_steps} optimizer steps"
        )
        if acc.is_main_process:
            ckpt.write_run_record(cfg.output_dir, self.identity)
            save_config(cfg, os.path.join(cfg.output_dir, "train_config.yaml"))
        if trackers_on(cfg):
            acc.init_trackers("rephraser", config={k: str(v) for k, v in asdict(cfg).items()})
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            previous = signal.signal(signum, self._on_sigterm)
            if previous is not None:  # None: a handler not set from Python, which cannot be put back
                self.cleanup.callback(signal.signal, signum, previous)

    def _on_sigterm(self, *_):
        self.stop_requested = True

    # ------------------------------------------------------------------ train
    def micro_batch(self, m: int) -> dict:
        """Micro-batch number m of the run (over all steps) for this process."""
        acc, cfg = self.accelerator, self.cfg
        epoch, index = divmod(m, self.per_epoch)
        rows = self.plan.micro_batch(epoch, index, acc.process_index, acc.num_processes, cfg.micro_batch_rows)
        return collate(self.data, rows, cfg.max_seq_len, cfg.packing, self.pad_id, fixed_width=cfg.use_compile())

    def micro_batches_of_step(self, step: int) -> list[dict]:
        return [self.micro_batch(step * self.cfg.grad_accum + a) for a in range(self.cfg.grad_accum)]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def train(self) -> bool:
        """The loop; True when a stop signal ended it (a checkpoint was saved)."""
        acc, cfg = self.accelerator, self.cfg
        self.model.train()
        bar = tqdm(
            total=self.total_steps, initial=self.step, desc="train", disable=not acc.is_main_process, dynamic_ncols=True
        )
        start, start_tokens = time.perf_counter(), self.tokens_seen
        while self.step < self.total_steps:
            loss = self.last_loss = self.optimizer_step(self.micro_batches_of_step(self.step))
            self.step += 1
            rate = (self.tokens_seen - start_tokens) / max(time.perf_counter() - start, 1e-9)
            lr = self.scheduler.get_last_lr()[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{rate:,.0f}")
            if trackers_on(cfg) and (self.step % cfg.log_every == 0 or self.step == self.total_steps):
                acc.log(
                    {"train/loss": loss, "train/lr": lr, "train/tokens_per_s": rate, "train/tokens": self.tokens_seen},
                    step=self.step,
                )
            if self._should_stop():
                self.save()
                acc.print(
                    f"stop signal (SIGTERM/SIGUSR1): saved step {self.step}; exiting with {EXIT_PREEMPTED} "
                    "(rerun with --resume auto)"
                )
                return True
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < self.total_steps:
                self.save()
        bar.close()
        self.save()
        self.write_metrics(time.perf_counter() - start, self.tokens_seen - start_tokens)
        return False

    def write_metrics(self, seconds: float, tokens: int) -> None:
        """train_metrics.json, atomically: loss tokens trained on and wall time of the loop (startup excluded)."""
        if not self.accelerator.is_main_process:
            return
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        metrics = {
            "steps": self.step,
            "loss_tokens": tokens,
            "train_seconds": seconds,
            "loss_tokens_per_s": tokens / max(seconds, 1e-9),
            "processes": self.accelerator.num_processes,
            "peak_gpu_memory_gib": peak,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "truncated_samples": self.truncated["samples"],
            "truncated_tokens": self.truncated["tokens"],
            "last_loss": getattr(self, "last_loss", None),
        }
        atomic_write_text(os.path.join(self.cfg.output_dir, "train_metrics.json"), json.dumps(metrics, indent=2) + "\n")

    def optimizer_step(self, batches: list[dict]) -> float:
        acc = self.accelerator
        local = torch.tensor([float(sum(loss_tokens(b) for b in batches))], device=acc.device)
        global_tokens = acc.reduce(local, reduction="sum").item()
        total = torch.zeros((), device=acc.device)
        for batch in batches:
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            with acc.accumulate(self.model):
                token_loss_sum = self.model(**batch)  # CausalLMLoss: the sum of token losses, chunked
                # Gradients are averaged over processes and accelerate divides by grad_accum: undo both,
                # so the step's gradient is (sum of all token losses) / (global loss-token count).
                scale = acc.num_processes * self.cfg.grad_accum / max(global_tokens, 1.0)
                acc.backward(token_loss_sum * scale)
                if acc.sync_gradients and self.cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            total += token_loss_sum.detach()
        self.scheduler.step()
        self.tokens_seen += int(global_tokens)
        return (acc.reduce(total, reduction="sum") / max(global_tokens, 1.0)).item()

    def _should_stop(self) -> bool:
        flag = torch.tensor([1.0 if self.stop_requested else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    # ------------------------------------------------------------------ save
    def save(self) -> None:
        ckpt.save_checkpoint(
            self.accelerator,
            self.cfg.output_dir,
            self.step,
            {"step": self.step, "tokens_seen": self.tokens_seen},
            self.cfg.keep_last,
        )

    def export(self) -> None:
        path = export_model(
            self.accelerator, self.model, self.tokenizer, self.cfg, self.model_name, self.cfg.output_dir
        )
        self.accelerator.print(f"final model: {path}")


def make_accelerator(cfg: TrainConfig):
    """The launcher's settings (accelerate config / env) with bf16 by default on CUDA."""
    from accelerate import Accelerator

    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if torch.cuda.is_available() else "no")
    return Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=mixed,
        log_with=None if cfg.report_to == "none" else cfg.report_to,
        project_dir=cfg.output_dir,
    )


def trackers_on(cfg: TrainConfig) -> bool:
    return cfg.report_to != "none"
