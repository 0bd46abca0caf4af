"""The fine-tuner: `accelerate launch [--config_file configs/accelerate/X.yaml] -m rephraser.train ...`
(or `python -m rephraser.train ...` on one process, CPU included).

main() = set up (config, accelerator, model, data, optimizer, resume), train, export; cleanup in `finally`.
Loss = sum of token losses / global count of loss tokens in the optimizer step (all ranks and accumulation
steps), so the gradient does not depend on how the global batch is split; it is computed by
rephraser.train.loss without the full logits tensor. SIGTERM and SIGUSR1 (SLURM's preemption warning with
`#SBATCH --signal=USR1@120`) save a checkpoint at the next step boundary and exit with EXIT_PREEMPTED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import asdict

import torch
from tqdm import tqdm

from rephraser.config import build_parser, resolve, save_config
from rephraser.errors import RephraserError
from rephraser.locking import output_lock
from rephraser.modelref import model_identity, resolve_model
from rephraser.train import checkpoint as ckpt
from rephraser.train.config import TrainConfig
from rephraser.train.data import EpochPlan, TrainData, collate, loss_tokens
from rephraser.train.model import build as build_model
from rephraser.train.model import export as export_model

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving; rerun with --resume auto


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(TrainConfig, prog="python -m rephraser.train")
    try:
        cfg = resolve(TrainConfig, parser.parse_args(argv))
        return Trainer(cfg).run()
    except RephraserError as e:
        print(f"rephraser.train: error: {e}", file=sys.stderr)
        return 1


def train(cfg: TrainConfig) -> int:
    """`rephraser train`: the same trainer in this process; returns the exit status (75 after a SIGTERM save)."""
    return Trainer(cfg).run()


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.stop_requested = False

    def run(self) -> int:
        from accelerate import Accelerator

        mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if torch.cuda.is_available() else "no")
        trackers = None if self.cfg.report_to == "none" else self.cfg.report_to
        self.accelerator = Accelerator(
            gradient_accumulation_steps=self.cfg.grad_accum,
            mixed_precision=mixed,
            log_with=trackers,
            project_dir=self.cfg.output_dir,
        )
        lock = contextlib.ExitStack()
        try:
            if self.accelerator.is_main_process:  # one run per output dir (the lock goes when this process does)
                lock.enter_context(output_lock(self.cfg.output_dir, "training run"))
            self.setup()
            stopped = self.train()
            if stopped:
                return EXIT_PREEMPTED
            self.export()
            return 0
        finally:
            self.accelerator.end_training()  # closes trackers; destroys the process group when distributed
            lock.close()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from transformers import AutoTokenizer, get_scheduler

        cfg, acc = self.cfg, self.accelerator
        model_name = resolve_model(cfg.model)
        self.data = TrainData(cfg.data)
        identity = {"model": model_identity(model_name), "data": self.data.identity(), "config": cfg.run_fields()}
        ckpt.check_output_dir(cfg.output_dir, identity, cfg.resume)
        cut, cut_tokens = self.data.truncation(cfg.max_seq_len)
        if cut:
            acc.print(
                f"warning: {cut} of {len(self.data)} samples are longer than --max-seq-len {cfg.max_seq_len} and are "
                f"cut to it ({cut_tokens} tokens not trained on); raise --max-seq-len to keep them whole"
            )
        self.truncated = {"samples": cut, "tokens": cut_tokens}
        torch.manual_seed(cfg.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(model_name)
        self.model_name = model_name
        model = build_model(cfg, model_name)
        self.data.check_vocab(model.model.config.vocab_size)
        self.plan = EpochPlan(self.data.lengths, cfg.max_seq_len, cfg.packing, cfg.seed)
        self.per_epoch = self.plan.micro_batches_per_epoch(acc.num_processes, cfg.micro_batch_rows)
        self.total_steps = cfg.total_steps(self.per_epoch)
        model = acc.prepare(model)
        trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
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
        self.model = model
        self.step, self.tokens_seen = 0, 0
        resume_from = ckpt.find_resume_point(cfg.output_dir, cfg.resume)
        if resume_from is not None:
            state = ckpt.load_checkpoint(acc, resume_from)
            self.step, self.tokens_seen = state["step"], state["tokens_seen"]
            acc.print(f"resumed from {resume_from} at step {self.step}")
        acc.print(
            f"{len(self.data)} samples in {len(self.plan.packed)} rows of <= {cfg.max_seq_len} tokens; "
            f"{acc.num_processes} process(es) x {cfg.micro_batch_rows} rows x {cfg.grad_accum} accumulation; "
            f"{self.per_epoch} micro-batches per epoch per process; {self.total_steps} optimizer steps"
        )
        if acc.is_main_process:
            ckpt.write_run_record(cfg.output_dir, identity)
            save_config(cfg, os.path.join(cfg.output_dir, "train_config.yaml"))
        if trackers_on(cfg):
            acc.init_trackers("rephraser", config={k: str(v) for k, v in asdict(cfg).items()})
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(signum, self._on_sigterm)

    def _on_sigterm(self, *_):
        self.stop_requested = True

    # ------------------------------------------------------------------ train
    def micro_batches_of_step(self, step: int) -> list[dict]:
        acc, cfg = self.accelerator, self.cfg
        batches = []
        for a in range(cfg.grad_accum):
            m = step * cfg.grad_accum + a
            epoch, index = divmod(m, self.per_epoch)
            rows = self.plan.micro_batch(epoch, index, acc.process_index, acc.num_processes, cfg.micro_batch_rows)
            batches.append(
                collate(self.data, rows, cfg.max_seq_len, cfg.packing, self.pad_id, fixed_width=cfg.use_compile())
            )
        return batches

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def train(self) -> bool:
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
        """train_metrics.json: loss tokens trained on and wall time of the loop (startup excluded)."""
        if self.accelerator.is_main_process:
            import json
            import resource

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
            with open(os.path.join(self.cfg.output_dir, "train_metrics.json"), "w") as fh:
                json.dump(metrics, fh, indent=2)

    def optimizer_step(self, batches: list[dict]) -> float:
        acc = self.accelerator
        local = torch.tensor([float(sum(loss_tokens(b) for b in batches))], device=acc.device)
        global_tokens = acc.reduce(local, reduction="sum").item()
        total = torch.zeros((), device=acc.device)
        for batch in batches:
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            with acc.accumulate(self.model):
                token_loss_sum = self.token_loss_sum(batch)
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

    def token_loss_sum(self, batch: dict) -> torch.Tensor:
        return self.model(**batch)  # CausalLMLoss: the sum of token losses, chunked

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


def trackers_on(cfg: TrainConfig) -> bool:
    return cfg.report_to != "none"
