"""RephraseConfig: one configuration for `rephraser rephrase` (defaults -> --config file.yaml -> flags)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import field as option  # `field` is also a setting's name (the doc field to rephrase)
from typing import Literal

from rephraser.config import check_choice, check_positive
from rephraser.errors import ConfigError

BENCHMARKS = ("gsm8k", "mmlu", "humaneval")
BACKENDS = ("openai", "vllm", "code-ast")
# Settings that may differ when a run is resumed: they change how fast, not what is produced.
OPERATIONAL_FIELDS = ("concurrency", "timeout_s", "api_base", "confirm_run_unsafe_code", "data_dir")


@dataclass
class RephraseConfig:
    """Make the rephrased (or translated) twin of a benchmark or lm-eval task, checked for overlap and meaning."""

    backend: Literal["openai", "vllm", "code-ast"] = option(
        metadata={"help": "who rephrases: an OpenAI-compatible endpoint, vLLM offline, or the offline Python rewriter"}
    )
    out: str = option(
        metadata={"help": "output directory (records.jsonl, train.jsonl, task/, report.json); rerun to resume"}
    )
    benchmark: Literal["gsm8k", "mmlu", "humaneval"] | None = option(default=None, metadata={"help": "a preset"})
    task: str | None = option(default=None, metadata={"help": "any lm-eval task name (instead of --benchmark)"})
    field: str | None = option(
        default=None,
        metadata={"help": "--task: the doc field to rephrase (default: the one text field its prompt uses)"},
    )
    include_path: str | None = option(
        default=None, metadata={"help": "--task: a folder of task YAMLs (lm-eval's --include_path)"}
    )
    subjects: list[str] | None = option(
        default=None, metadata={"help": "--benchmark mmlu: these subjects (default: all 57)"}
    )
    model: str | None = option(
        default=None,
        metadata={"help": "the model that rephrases (openai: the endpoint's name; vllm: a directory or hub id)"},
    )
    api_base: str | None = option(
        default=None, metadata={"help": "openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (key from OPENAI_API_KEY)"}
    )
    translate: str | None = option(
        default=None, metadata={"help": "translate into this language instead of paraphrasing"}
    )
    limit: int | None = option(default=None, metadata={"help": "only the first N items"})
    max_attempts: int = option(default=5, metadata={"help": "tries per item before it is reported as failed"})
    max_shared_words: int = option(
        default=10,
        metadata={"help": "a rephrase must share fewer consecutive words with the original (the study's 10-gram test)"},
    )
    concurrency: int = option(default=8, metadata={"help": "openai: requests in flight"})
    timeout_s: float = option(default=60.0, metadata={"help": "openai: per-request timeout"})
    temperature: float = option(default=0.7, metadata={"help": "sampling temperature (each retry samples anew)"})
    max_tokens: int = option(default=1024, metadata={"help": "longest reply"})
    seed: int = option(default=0, metadata={"help": "base seed (vllm: attempt k of item i uses a seed of its own)"})
    prompt_file: str | None = option(
        default=None, metadata={"help": "your own prompt ({text}, {language} are filled in)"}
    )
    confirm_run_unsafe_code: bool = option(
        default=False,
        metadata={"help": "humaneval: allow running the original tests on rewritten programs (in the sandbox)"},
    )
    data_dir: str | None = option(
        default=None, metadata={"help": "a local benchmark mirror (else REPHRASER_DATA_DIR, then the hub)"}
    )

    def __post_init__(self):
        if (self.benchmark is None) == (self.task is None):
            raise ConfigError("benchmark / task: give exactly one of --benchmark gsm8k|mmlu|humaneval or --task NAME")
        if self.benchmark is not None:
            check_choice("benchmark", self.benchmark, BENCHMARKS)
        check_choice("backend", self.backend, BACKENDS)
        if self.field is not None and self.task is None or self.include_path is not None and self.task is None:
            raise ConfigError("field / include_path: only with --task")
        if self.subjects is not None and self.benchmark != "mmlu":
            raise ConfigError("subjects: only with --benchmark mmlu")
        if self.backend == "code-ast" and (self.benchmark != "humaneval" or self.translate):
            raise ConfigError(
                "backend: code-ast rewrites Python programs: use it with --benchmark humaneval, without --translate"
            )
        if self.benchmark == "humaneval" and not self.confirm_run_unsafe_code:
            raise ConfigError(
                "confirm_run_unsafe_code: HumanEval rephrases are checked by running the original tests on "
                "the rewritten programs (in rephraser's sandbox); pass --confirm-run-unsafe-code to allow it"
            )
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
