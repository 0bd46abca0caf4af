"""RephraseConfig: one configuration for `rephraser rephrase` (defaults -> --config file.yaml -> flags)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from rephraser.config import check_choice, check_positive
from rephraser.errors import ConfigError

BACKENDS = ("openai", "vllm", "code-ast")
# Settings that may differ when a run is resumed: they change how fast, not what is produced.
OPERATIONAL_FIELDS = ("concurrency", "timeout_s", "api_base", "check_api_base", "confirm_run_unsafe_code", "data_dir")


@dataclass
class RephraseConfig:
    """Make the rephrased (or translated) twin of a benchmark or lm-eval task, checked for overlap and meaning."""

    backend: Literal["openai", "vllm", "code-ast"]
    """who rephrases: an OpenAI-compatible endpoint, vLLM offline, or the offline Python rewriter"""
    out: str
    """output directory (records.jsonl, train.jsonl, task/, report.json); rerun to resume"""
    benchmark: str | None = None
    """gsm8k | mmlu | humaneval, or a benchmark folder"""
    task: str | None = None
    """any lm-eval task name (instead of --benchmark)"""
    field: str | None = None
    """--task: the doc field to rephrase (default: the one text field its prompt uses)"""
    include_path: str | None = None
    """--task: a folder of task YAMLs (lm-eval's --include_path)"""
    subjects: list[str] | None = None
    """--benchmark mmlu: these subjects (default: all 57)"""
    model: str | None = None
    """the model that rephrases (openai: the endpoint's name; vllm: a directory or hub id)"""
    api_base: str | None = None
    """openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (key from OPENAI_API_KEY)"""
    translate: str | None = None
    """translate into this language instead of paraphrasing"""
    limit: int | None = None
    """only the first N items"""
    max_attempts: int = 5
    """tries per item before it is reported as failed"""
    max_shared_words: int = 10
    """a rephrase must share fewer consecutive words with the original (the study's 10-gram test)"""
    concurrency: int = 8
    """openai: requests in flight"""
    timeout_s: float = 60.0
    """openai: per-request timeout"""
    temperature: float = 0.7
    """sampling temperature (each retry samples anew)"""
    max_tokens: int = 1024
    """longest reply"""
    seed: int = 0
    """base seed (vllm: attempt k of item i uses a seed of its own)"""
    prompt_file: str | None = None
    """your own prompt ({text}, {language} are filled in)"""
    confirm_run_unsafe_code: bool = False
    """humaneval: allow running the original tests on rewritten programs (in the sandbox)"""
    check_judge: Literal["openai", "vllm"] | None = None
    """also ask an LLM judge whether each rephrase means the same (the study's judge prompt)"""
    check_model: str | None = None
    """--check-judge: its model (default: --model)"""
    check_api_base: str | None = None
    """--check-judge openai: its endpoint (default: --api-base)"""
    data_dir: str | None = None
    """a local benchmark mirror (else REPHRASER_DATA_DIR, then the hub)"""

    def __post_init__(self):
        if (self.benchmark is None) == (self.task is None):
            raise ConfigError("benchmark / task: give exactly one of --benchmark gsm8k|mmlu|humaneval or --task NAME")
        check_choice("backend", self.backend, BACKENDS)
        check_choice("check_judge", self.check_judge, (None, "openai", "vllm"))
        if self.field is not None and self.task is None or self.include_path is not None and self.task is None:
            raise ConfigError("field / include_path: only with --task")
        bench = None
        if self.benchmark is not None:
            from rephraser.benchmarks import benchmark_class, check_benchmark

            self.benchmark = check_benchmark(self.benchmark)
            bench = benchmark_class(self.benchmark)
        if self.subjects is not None and not (bench and bench.subject_names):
            raise ConfigError("subjects: only with a benchmark that has subjects (--benchmark mmlu)")
        if self.backend == "code-ast" and (bench is None or bench.kind != "code" or self.translate):
            raise ConfigError(
                "backend: code-ast rewrites Python programs: use it with --benchmark humaneval, without --translate"
            )
        if bench is not None and bench.unsafe_code and not self.confirm_run_unsafe_code:
            raise ConfigError(
                f"confirm_run_unsafe_code: {bench.title} rephrases are checked by running the original tests on "
                "the rewritten programs (in rephraser's sandbox); pass --confirm-run-unsafe-code to allow it"
            )
        if self.check_judge == "openai" and not (self.check_api_base or self.api_base):
            raise ConfigError("check_api_base: --check-judge openai needs --check-api-base (or --api-base)")
        if self.check_judge and not (self.check_model or self.model):
            raise ConfigError("check_model: --check-judge needs --check-model (or --model)")
        if self.backend in ("openai", "vllm") and not self.model:
            raise ConfigError(f"model: --backend {self.backend} needs --model")
        if self.backend == "openai" and not self.api_base:
            raise ConfigError("api_base: --backend openai needs --api-base (e.g. http://127.0.0.1:8000/v1)")
        for name in ("max_attempts", "max_shared_words", "concurrency", "max_tokens"):
            check_positive(name, getattr(self, name))
        if self.limit is not None:
            check_positive("limit", self.limit)
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s: expected a positive number, got {self.timeout_s!r}")

    def identity(self) -> dict:
        """What a resumed run must share with the run that wrote the output directory."""
        return {k: v for k, v in asdict(self).items() if k not in OPERATIONAL_FIELDS}
