"""Any lm-eval task as a benchmark (`--task X`): its docs through lm-eval itself, and its twin `rephrased_X`.

    bench = TaskBenchmark("arc_easy", field=None, include_path=None)
    bench.items()       X's evaluation docs as lm-eval processes them; the text is one field of each
    bench.field         the doc field that is rephrased and compared

The field: `field`, else the one text field X's `doc_to_text` uses (its Jinja variables, or, for a function,
the string fields whose value appears in the rendered prompt), else an error listing the candidates. The
meaning check: every other field stays byte-identical; the reply is a rephrase (no refusal, a plausible length,
still asks what the original asks: checks.py); every number of the original survives; the gold answer does not
appear in it unless it appeared in the original; and, with a judge, the judge says both mean the same. The
training text is X's own prompt and target, rendered by lm-eval on the rephrased doc. The twin, written into a
folder: `rephrased_X.yaml` includes X's own YAML (prompt, metrics, filters, few-shot settings) and replaces its data
with a snapshot of X's docs in which the field is swapped by index (twin.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks.base import Benchmark, Item
from rephraser.benchmarks.checks import dropped_numbers, generic_reason
from rephraser.benchmarks.mmlu.leaks import normalise
from rephraser.errors import ConfigError

SNAPSHOT_SPLITS = ("test_split", "validation_split", "training_split", "fewshot_split")


def _json_safe(doc: dict) -> dict:
    return json.loads(json.dumps(doc, default=str, ensure_ascii=False))


class TaskBenchmark(Benchmark):
    kind = "text"  # the generic rephrase prompt
    title = "lm-eval task"

    @property
    def judge_kind(self) -> str:
        return "knowledge"  # the study's "are these the same question?" instruction suits any task's questions

    def __init__(self, task: str, field: str | None = None, include_path: str | None = None, judge=None, **settings):
        super().__init__(**settings)
        from rephraser.tasks import task_manager

        self.task_name, self.name, self.title, self.judge = task, task, task, judge
        self.manager = task_manager(include_path=include_path)
        entry = self.manager.task_index.get(task)
        if entry is None:
            where = f" (searched {include_path} too)" if include_path else ""
            raise ConfigError(f"task: lm-eval knows no task {task!r}{where}")
        if entry.kind.name not in ("TASK", "PY_TASK"):
            raise ConfigError(f"task: {task} is a {entry.kind.name.lower()}; give one of its tasks")
        self.entry = entry
        try:
            self.task = self.manager.load([task])["tasks"][task]
        except Exception as e:  # lm-eval's own failure (missing data, an empty split): one line, with its cause
            raise ConfigError(
                f"task: lm-eval could not load {task} ({type(e).__name__}: {str(e)[:200] or 'no message'}); "
                "is its dataset there and non-empty?"
            ) from None
        self.raw_docs = [_json_safe(dict(d)) for d in self.task.eval_docs]
        if not self.raw_docs:
            raise ConfigError(f"task: {task} has no evaluation docs")
        self.field = field or self._detect_field()
        if self.field not in self.raw_docs[0] or not isinstance(self.raw_docs[0][self.field], str):
            fields = sorted(self.raw_docs[0])
            raise ConfigError(f"field: {self.field!r} is not a text field of {task}'s docs (fields: {fields})")

    def _detect_field(self) -> str:
        first = self.raw_docs[0]
        text_fields = [k for k, v in first.items() if isinstance(v, str)]
        source = self.task.config.doc_to_text
        if isinstance(source, str) and source in text_fields:
            return source
        if isinstance(source, str):
            import jinja2
            from jinja2 import meta

            used = meta.find_undeclared_variables(jinja2.Environment().parse(source))
            candidates = [k for k in text_fields if k in used]
        else:  # a function: the fields whose text ends up in the prompt
            rendered = str(self.task.doc_to_text(self.task.eval_docs[0]))
            candidates = [k for k in text_fields if first[k].strip() and first[k].strip() in rendered]
        if len(candidates) != 1:
            raise ConfigError(
                f"field: cannot tell which field of {self.task_name} to rephrase (its prompt uses "
                f"{candidates or 'none of its text fields'}); give --field, one of {text_fields}"
            )
        return candidates[0]

    # ------------------------------------------------------------------ data
    def item_id(self, doc: dict) -> str:
        return f"{self.task_name}/{doc['index']}"

    def items(self) -> list[Item]:
        return [Item(i, f"{self.task_name}/{i}", doc[self.field], doc) for i, doc in enumerate(self.raw_docs)]

    def splits(self, variant: str = "original", subset: str | None = None) -> dict[str, list[dict]]:
        if variant != "original":
            raise ConfigError(
                f"{self.task_name}: only its original docs are known here (make a twin: rephraser rephrase)"
            )
        return {"test": [{**d, "index": i, "id": self.item_id({"index": i})} for i, d in enumerate(self.raw_docs)]}

    # ------------------------------------------------------------------ formats
    def prompt(self, doc: dict) -> str:
        return str(self.task.doc_to_text(doc))

    def description(self, doc: dict) -> str:
        return str(self.task.resolve_field(doc, self.task.config.description) or "")

    def target(self, doc: dict) -> str:
        target = self.task.doc_to_target(doc)
        if isinstance(target, int) and self.task.config.output_type == "multiple_choice":
            target = self.task.doc_to_choice(doc)[target]
        elif isinstance(target, list):
            target = target[0]
        return f"{self.task.config.target_delimiter}{target}"

    # ------------------------------------------------------------------ rephrase
    def rephrased_doc(self, item: Item, text: str) -> dict:
        return {**item.doc, self.field: text}

    def check(self, items: list[Item], candidates: list[str], translate: str | None = None) -> list[str | None]:
        reasons = [self._reason(item, candidate, translate) for item, candidate in zip(items, candidates)]
        if self.judge is not None:  # only what passed the cheap checks goes to the judge
            asked = [k for k, reason in enumerate(reasons) if reason is None]
            verdicts = self.judge.judge_pairs([(items[k].text, candidates[k]) for k in asked])
            for k, verdict in zip(asked, verdicts):
                if verdict is not True:
                    reasons[k] = "the judge did not confirm it means the same" + (
                        " (no verdict)" if verdict is None else ""
                    )
        return reasons

    def _reason(self, item: Item, candidate: str, translate: str | None) -> str | None:
        doc = self.rephrased_doc(item, candidate)
        if {k: v for k, v in doc.items() if k != self.field} != {k: v for k, v in item.doc.items() if k != self.field}:
            return "fields other than the rephrased one changed"
        reason = generic_reason(item.text, candidate, translate)
        if reason or translate:
            return reason
        return dropped_numbers(item.text, candidate) or self._leak(item, candidate)

    def _leak(self, item: Item, candidate: str) -> str | None:
        """The gold answer stated in the rephrase but not in the original (it would make the item trivial)."""
        answer = self.target(item.doc).strip()
        norm = f" {normalise(answer)} "
        # An answer of a few letters ("yes", "B", "12") appears in ordinary text; one of 4 or more is a leak.
        if len(norm.strip()) >= 4 and norm in f" {normalise(candidate)} " and norm not in f" {normalise(item.text)} ":
            return f"it gives the answer away ({answer!r})"
        return None

    def rephrased_training_text(self, item: Item, rephrased: str) -> str:
        return self.training_text(self.rephrased_doc(item, rephrased))

    def write_twin(self, folder: Path, items: list[Item], accepted: dict[int, str], translate: str | None) -> list[str]:
        config = self.task.config
        splits = {}
        for key in SNAPSHOT_SPLITS:
            split = getattr(config, key, None)
            if split and split not in splits and split != config.test_split:
                docs = self._docs_of(key)
                if docs is not None:
                    splits[split] = docs
        eval_split = config.test_split or config.validation_split
        ordered = sorted(items, key=lambda i: i.index)
        splits[eval_split] = [self.rephrased_doc(i, accepted[i.index]) for i in ordered if i.index in accepted]
        (folder / "docs").mkdir(parents=True, exist_ok=True)
        for split, docs in splits.items():
            lines = "".join(json.dumps(_json_safe(dict(d)), ensure_ascii=False) + "\n" for d in docs)
            atomic_write_text(folder / "docs" / f"{split}.jsonl", lines)
        name = f"rephrased_{self.task_name}"
        source_yaml = Path(self.entry.yaml_path).resolve()
        atomic_write_text(
            folder / f"{name}.yaml",
            f"# Generated by `rephraser rephrase --task {self.task_name}`: {self.task_name}'s own configuration,\n"
            f"# with its docs replaced by a snapshot in which the field '{self.field}' is rephrased (items without\n"
            "# a rephrase left out).\n"
            f"include: {json.dumps(str(source_yaml))}\ntask: {name}\ntag:\n  - rephraser_twin\n"
            "custom_dataset: !function rephraser.benchmarks.task.twin.twin_dataset\nprocess_docs: null\n"
            f"metadata:\n  version: 1.0\n  twin_dir: {json.dumps(str(folder.resolve()))}\n",
        )
        return [f"lm_eval run --include_path {folder.resolve()} --tasks {name} ..."]

    def _docs_of(self, key: str):
        getter = {
            "validation_split": "validation_docs",
            "training_split": "training_docs",
            "fewshot_split": "fewshot_docs",
        }
        try:
            docs = getattr(self.task, getter[key])()
        except Exception:  # a split X declares but cannot build: the twin simply goes without it
            return None
        return [_json_safe(dict(d)) for d in docs] if docs is not None else None
