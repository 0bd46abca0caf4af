"""What every benchmark is: one object that owns loading, ids, gold, prompts, training texts, the rephrase check,
the twin writer, the detect settings and the metrics. Commands ask it; none of them knows a benchmark by name.

    bench = get_benchmark("gsm8k", data_dir=...)           # rephraser.benchmarks: the registry
    bench.items()                                          # the original test items: Item(index, id, text, doc)
    bench.docs("rephrased")                                # the evaluated docs of a variant (each with "id")
    bench.training_texts("rephrased")                      # id -> the study's training text of that variant
    bench.prompt(doc), bench.training_text(doc)            # the evaluated prompt; prompt + target (same function)
    bench.check(items, candidates)                         # rephrase: None or why a candidate is rejected
    bench.write_twin(folder, items, accepted)              # rephrase: the files lm-eval needs for the twin

A benchmark lives in one folder: its lm-eval YAMLs (which load data through rephraser.tasks.lmeval.dataset with
`benchmark: <name>`) beside a module defining a Benchmark subclass. Built-in ones are registered in
rephraser/benchmarks/__init__.py; any folder with a `benchmark.py` defining BENCHMARK can be named by its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rephraser.benchmarks.checks import generic_reason
from rephraser.errors import ConfigError
from rephraser.log import get_logger

log = get_logger("rephraser.benchmarks")


@dataclass
class Item:
    """One test item as `rephrase` and `detect` see it."""

    index: int  # position in the benchmark's original order (records and train.jsonl are aligned by it)
    id: str  # the one id of the item, as parts.json, results and reports name it
    text: str  # the text that is rephrased and that detectors compare
    doc: dict  # the whole original doc, as the lm-eval task sees it


class Benchmark:
    """The interface. Subclasses set the class attributes and implement the methods that raise here."""

    name: ClassVar[str]  # registry name and id prefix
    title: ClassVar[str]  # for people: "GSM-8K"
    kind: ClassVar[str] = "text"  # math | knowledge | code | text: rephrase prompts and the detect judge's instruction
    embedding_threshold: ClassVar[float] = 0.5  # the study's cosine threshold for its embedding detector
    metrics: ClassVar[tuple[tuple[str, str], ...]] = ()  # (metric, filter) pairs the experiment reads from lm-eval

    @classmethod
    def metric_label(cls, metric: str, filter_name: str) -> str:
        """How results.json names a metric: `exact_match (strict-match)`, or `acc` for lm-eval's filter "none"."""
        return metric if filter_name == "none" else f"{metric} ({filter_name})"

    @classmethod
    def main_metric(cls) -> str:
        """The metric the score gain beside detectability and the ConStat test are read on: the first one."""
        return cls.metric_label(*cls.metrics[0])

    variants: ClassVar[tuple[str, ...]] = ("original", "rephrased")  # what its lm-eval tasks evaluate
    train_kinds: ClassVar[tuple[str, ...]] = ("original", "rephrased")  # what an experiment can train on
    languages: ClassVar[tuple[str, ...]] = ()  # translations an experiment can train on (train_on: translated)
    unsafe_code: ClassVar[bool] = False  # scored by running model-written code (needs explicit consent)
    folder: ClassVar[Path]  # its lm-eval YAMLs (lm_eval --include_path for benchmarks outside rephraser)
    fewshot_split: ClassVar[str | None] = None  # the split few-shot examples come from (never the test split)
    subject_names: ClassVar[tuple[str, ...]] = ()  # the subjects a user may choose (`subjects`), if it has any

    def __init__(self, data_dir: str | None = None, subjects: list[str] | None = None, **metadata):
        self.data_dir = data_dir or metadata.get("data_dir")
        self.subjects = subjects
        self.metadata = metadata

    # ------------------------------------------------------------------ data
    def items(self) -> list[Item]:
        """The original test items in order (rephrase and detect read these)."""
        raise NotImplementedError

    def splits(self, variant: str = "original", subset: str | None = None) -> dict[str, list[dict]]:
        """The lm-eval dataset of one variant: {"test": docs (each with "index" and "id"), few-shot split: docs}."""
        raise NotImplementedError

    def subsets(self) -> list[str | None]:
        """The parts its lm-eval tasks are split into ([None]: one task; MMLU: one task per subject)."""
        return [None]

    def subset_of(self, item_id: str) -> str | None:
        return None

    def task_name(self, variant: str, subset: str | None = None) -> str:
        """Its lm-eval task of a variant (of one subset): `<variant>_<name>[_<subset>]`, e.g. rephrased_gsm8k."""
        return f"{variant}_{self.name}" + (f"_{subset}" if subset else "")

    def task_yaml(self, variant: str, subset: str | None = None) -> Path:
        """The YAML of that task, in the benchmark's folder (the experiment's part tasks include it)."""
        return self.folder / f"{self.task_name(variant, subset)}.yaml"

    def docs(self, variant: str = "original") -> list[dict]:
        """The evaluated test docs of a variant, every subset, each with its "id" (loaded once per object)."""
        cache = self.__dict__.setdefault("_docs_cache", {})
        if variant not in cache:
            cache[variant] = [doc for subset in self.subsets() for doc in self.splits(variant, subset)["test"]]
        return cache[variant]

    def item_id(self, doc: dict) -> str:
        return f"{self.name}/{doc['index']}"

    def check_ids(self, ids: list[str], where: str) -> None:
        """Every id must be one of this benchmark's items (a mistyped id is an error, never silently dropped)."""
        known = {item.id for item in self.items()}
        unknown = [i for i in ids if i not in known]
        if unknown:
            example = next(iter(sorted(known)), "")
            raise ConfigError(
                f"{where}: {len(unknown)} id(s) are not {self.title} items: {unknown[:5]} (ids look like {example!r})"
            )

    # ------------------------------------------------------------------ formats
    def prompt(self, doc: dict) -> str:
        """The prompt as the lm-eval task renders it (its YAML's doc_to_text is this function)."""
        raise NotImplementedError

    def target(self, doc: dict) -> str:
        """What follows the prompt in a training text (target_delimiter included)."""
        raise NotImplementedError

    def description(self, doc: dict) -> str:
        """What the task's YAML puts before every prompt (lm-eval's `description`, e.g. MMLU's "The following are
        multiple choice questions ..."): evaluated with the prompt, so trained on with it."""
        return ""

    def training_text(self, doc: dict) -> str:
        """The one training text of a doc: exactly the evaluated 0-shot context (description, prompt), then the
        target."""
        return self.description(doc) + self.prompt(doc) + self.target(doc)

    def training_texts(self, kind: str, language: str | None = None) -> dict[str, str]:
        """id -> the training text of every item that has one, for `kind` original | rephrased | translated.
        Items whose text is not usable (an empty placeholder) have none."""
        if kind == "translated":
            raise ConfigError(f"{self.name}: no translated training texts exist for {self.title}")
        return {doc["id"]: self.training_text(doc) for doc in self.docs(kind)}

    row_key: ClassVar[str | None] = None  # the field that identifies a JSONL training-row format of its own ...
    row_fields: ClassVar[tuple[str, ...]] = ()  # ... and its fields (`rephraser tokenize` reads such rows)

    @staticmethod
    def row(fields: dict) -> tuple[str, str]:
        """(prompt, solution) of one such row, in the evaluated format."""
        raise NotImplementedError

    def compared_text(self, doc: dict) -> str:
        """What overlap measures compare with training data: the prompt as evaluated (options included)."""
        return self.prompt(doc)

    # ------------------------------------------------------------------ rephrase
    labels: ClassVar[tuple[str, ...]] = ("Rephrased text", "Rephrased", "Translation", "Text")

    def clean(self, reply: str) -> str:
        """A model's reply as the candidate text (wrapping quotes and leading labels removed)."""
        return strip_reply(reply, self.labels)

    def check(self, items: list[Item], candidates: list[str], translate: str | None = None) -> list[str | None]:
        """Per candidate: None if it means the same as its item, else why not (sent back to the model)."""
        return [generic_reason(item.text, candidate, translate) for item, candidate in zip(items, candidates)]

    def rephrased_training_text(self, item: Item, rephrased: str) -> str:
        """The training text of a rephrase made by `rephraser rephrase` (the evaluated format)."""
        raise NotImplementedError

    def write_twin(self, folder: Path, items: list[Item], accepted: dict[int, str], translate: str | None) -> list[str]:
        """Write what lm-eval needs to evaluate the twin into `folder`; return the commands that do it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what `check` holds (a sandbox pool)."""

    # ------------------------------------------------------------------ detect
    @property
    def judge_kind(self) -> str:
        return self.kind

    def f1_columns(self, subset: str | None) -> tuple[list[str], dict[str, list[str]]]:
        """The study's F1 protocol: (originals, {column: texts index-aligned with them})."""
        raise ConfigError(f"{self.name}: the study's F1 protocol has no LMSYS files for {self.title}")

    f1_subsets: ClassVar[tuple[str | None, ...]] = (None,)  # F1 is measured per subset (MMLU: per LMSYS subject)
    f1_columns_names: ClassVar[tuple[str, ...]] = ()  # its LMSYS columns ("test" is the originals themselves)
    f1_judge_kind: ClassVar[str | None] = None  # the judge's instruction for F1 pairs (default: `kind`)


def strip_reply(reply: str, labels: tuple[str, ...] = ()) -> str:
    """A model's reply without wrapping quotes or a leading label ("Rephrased question: ...")."""
    text = reply.strip()
    for label in labels:
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].lstrip(" :\n")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text


def log_skipped(task: str, skipped: list, total: int, why: str) -> None:
    if skipped:
        shown = ", ".join(map(str, skipped[:50])) + (" ..." if len(skipped) > 50 else "")
        log.warning("%s: %d of %d records skipped: %s (indices: %s)", task, len(skipped), total, why, shown)
