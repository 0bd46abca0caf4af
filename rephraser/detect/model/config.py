"""DetectModelConfig: the settings of a model-level contamination run (`rephraser detect model`).

    cfg = DetectModelConfig(model="runs/x/model", out="runs/detect", detectors=["loss", "mink++", "ref"],
                            reference="HuggingFaceTB/SmolLM2-135M")
    results = score_items(cfg, items)            # rephraser.detect.model.run

Which benchmark items are scored: `--benchmark NAME` or `--task T` (any lm-eval task, `--field`), the `--variant`
whose texts are scored, and either `--parts PARTS.json` (an experiment's parts: every item labelled contaminated or
clean) or `--items ID ...`, then `--limit N` (select.py turns them into `Item`s). Every value is checked in
`__post_init__`, which names the field in its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as option
from typing import Literal

from rephraser.config import check_choice, check_positive
from rephraser.errors import ConfigError

LIKELIHOOD = ("loss", "zlib", "mink", "mink++", "ref", "paired")
SAMPLING = ("cdd", "ts-guess")
DETECTORS = LIKELIHOOD + SAMPLING
DEFAULT_DETECTORS = ("loss", "zlib", "mink", "mink++")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class DetectModelConfig:
    """Model-level contamination detectors on benchmark items, scored against known contamination when labelled."""

    model: str
    """the model under test: an HF directory or a hub id"""
    out: str
    """output directory (results.json, report.md, roc.png, hist_*.png)"""
    benchmark: str | None = None
    """gsm8k | mmlu | humaneval, or a benchmark folder"""
    task: str | None = None
    """any lm-eval task (instead of --benchmark)"""
    field: str | None = None
    """--task: the doc field that is the item's text"""
    include_path: str | None = None
    """--task: a folder of task YAMLs"""
    variant: Literal["original", "rephrased"] = "original"
    """score the items' original texts or their rephrased twins"""
    parts: str | None = None
    """an experiment's parts.json: its items, labelled contaminated / clean"""
    items: list[str] | None = None
    """these item ids only (unlabelled)"""
    limit: int | None = None
    """the first N items only (with --parts: the first N of each part, so both stay labelled)"""
    data_dir: str | None = None
    """a local benchmark mirror"""
    detectors: list[Literal["loss", "zlib", "mink", "mink++", "ref", "paired", "cdd", "ts-guess"]] = option(
        default_factory=lambda: list(DEFAULT_DETECTORS)
    )
    """loss (mean token log-likelihood), zlib (log-likelihood / zlib bytes), mink (mean of the lowest k of token
    log-probs), mink++ (the same, standardised by the model's next-token distribution; hf only), ref (log-likelihood
    minus the --reference model's), paired (on the item minus on its twin), cdd (peakedness of sampled outputs),
    ts-guess (MMLU: fill a masked wrong option)"""
    k: float = 0.2
    """mink / mink++: the share of lowest-scoring tokens, in (0, 1]"""
    reference: str | None = None
    """ref: the reference model (e.g. the base model the tested one was tuned from)"""
    backend: Literal["hf", "vllm"] = "hf"
    """hf (transformers) or vllm (prompt_logprobs, sampling; no mink++)"""
    batch_size: int = 8
    """items per forward pass"""
    device: str = "auto"
    """hf: cpu, cuda, cuda:N, or auto (cuda when available)"""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """model weights; auto = bfloat16 on CUDA, float32 on CPU"""
    chunk_tokens: int = 512
    """positions per LM-head chunk: a [chunk, vocab] block is the largest logits tensor held"""
    cdd_samples: int = 50
    """cdd: sampled outputs per item (the paper: 50)"""
    cdd_temperature: float = 0.8
    """cdd: sampling temperature (the paper: 0.8)"""
    cdd_alpha: float = 0.05
    """cdd: a sample counts as 'at the peak' within alpha x max length (paper: 0.05)"""
    cdd_xi: float = 0.01
    """cdd: an item is flagged when its peakedness exceeds xi (the paper: 0.01)"""
    cdd_max_new_tokens: int = 100
    """cdd: tokens generated per output (the reference code compares the first 100)"""
    cdd_distance: Literal["token", "char"] = "token"
    """cdd: edit distance over token ids (the reference code) or characters"""
    ts_max_new_tokens: int = 32
    """ts-guess: tokens generated for the fill"""
    chat_template: bool = False
    """cdd / ts-guess: wrap the prompt in the tokenizer's chat template"""
    seed: int = 0
    """seeds sampling, the masked option, bootstraps and CV folds"""
    bootstrap: int = 2000
    """bootstrap resamples for intervals and p-values"""
    baseline: bool = True
    """with labels: the blind bag-of-words baseline on the item texts"""

    def __post_init__(self):
        self._check_items()
        unknown = sorted(set(self.detectors) - set(DETECTORS))
        if unknown:
            raise ConfigError(f"detectors: unknown {unknown}; choose from {list(DETECTORS)}")
        if not self.detectors:
            raise ConfigError("detectors: give at least one")
        self.detectors = list(dict.fromkeys(self.detectors))  # a repeated name would be scored twice
        check_choice("backend", self.backend, ("hf", "vllm"))
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("cdd_distance", self.cdd_distance, ("token", "char"))
        _check_fraction("k", self.k, open_low=True)
        _check_fraction("cdd_alpha", self.cdd_alpha)
        _check_fraction("cdd_xi", self.cdd_xi)
        if not self.cdd_temperature > 0:
            raise ConfigError(
                f"cdd_temperature: must be > 0 (greedy output is taken separately), got {self.cdd_temperature}"
            )
        for name in ("batch_size", "chunk_tokens", "cdd_samples", "cdd_max_new_tokens", "ts_max_new_tokens"):
            check_positive(name, getattr(self, name))
        check_positive("bootstrap", self.bootstrap)
        if "mink++" in self.detectors and self.backend == "vllm":
            raise ConfigError(
                "detectors / backend: mink++ needs the full next-token distribution at every position, which vLLM's "
                "prompt_logprobs does not return; use --backend hf (or drop mink++)"
            )
        if "ref" in self.detectors and not self.reference:
            raise ConfigError("reference: the ref detector needs --reference MODEL (e.g. the base model)")
        if self.reference and "ref" not in self.detectors:
            raise ConfigError("reference: given, but 'ref' is not among --detectors (it would not be used)")

    def _check_items(self) -> None:
        if (self.benchmark is None) == (self.task is None):
            raise ConfigError("benchmark / task: give exactly one of --benchmark NAME or --task T")
        if self.benchmark is not None:
            from rephraser.benchmarks import check_benchmark

            self.benchmark = check_benchmark(self.benchmark)
        if (self.field or self.include_path) and not self.task:
            raise ConfigError("field / include_path: only with --task")
        check_choice("variant", self.variant, ("original", "rephrased"))
        if self.parts and self.items:
            raise ConfigError("parts / items: give one (--parts labels every item it lists)")
        if self.items is not None and not self.items:
            raise ConfigError("items: give at least one id")
        if self.limit is not None:
            check_positive("limit", self.limit)

    def needs_distribution(self) -> bool:
        """mink++ needs the mean and std of log p over the vocabulary at each position, not only the chosen token."""
        return "mink++" in self.detectors


def _check_fraction(name: str, value, open_low: bool = False) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (0 < value <= 1 if open_low else 0 <= value <= 1)
    )
    if not ok:
        raise ConfigError(f"{name}: expected a number in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}")
