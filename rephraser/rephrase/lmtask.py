"""`--task X`: rephrase any task lm-eval can load, through lm-eval itself, and write its twin `rephrased_X`.

    preset = TaskPreset(cfg); items = preset.load()       # X's evaluation docs, as lm-eval processes them
    preset.field                                           # the doc field that is rephrased

The field: `--field`, else the one text field X's `doc_to_text` uses (its Jinja variables, or, for a
function, the string fields whose value appears in the rendered prompt), else an error listing the
candidates. The meaning check: the rephrased doc differs from the original in that field only (every other
field byte-identical). The training text is X's own prompt and target, rendered by lm-eval on the rephrased
doc (`doc_to_text` + `target_delimiter` + the target). The twin, in OUT/task/: `rephrased_X.yaml` includes X's
own YAML (prompt, metrics, filters, few-shot settings) and replaces its data with a snapshot of X's docs in
which the field is swapped by index (rephraser.rephrase.twin): `lm_eval --include_path OUT/task --tasks rephrased_X`.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.errors import ConfigError
from rephraser.rephrase.presets import Item, Preset

SNAPSHOT_SPLITS = ("test_split", "validation_split", "training_split", "fewshot_split")


def _json_safe(doc: dict) -> dict:
    return json.loads(json.dumps(doc, default=str, ensure_ascii=False))


class TaskPreset(Preset):
    kind = "text"

    def __init__(self, cfg):
        super().__init__(cfg)
        from rephraser.tasks import task_manager

        self.manager = task_manager(include_path=cfg.include_path)
        entry = self.manager.task_index.get(cfg.task)
        if entry is None:
            raise ConfigError(
                f"task: lm-eval knows no task {cfg.task!r}"
                + (f" (searched {cfg.include_path} too)" if cfg.include_path else "")
            )
        if entry.kind.name not in ("TASK", "PY_TASK"):
            raise ConfigError(f"task: {cfg.task} is a {entry.kind.name.lower()}; give one of its tasks")
        self.entry = entry
        try:
            self.task = self.manager.load([cfg.task])["tasks"][cfg.task]
        except Exception as e:  # lm-eval's own failure (missing data, an empty split): one line, with its cause
            raise ConfigError(
                f"task: lm-eval could not load {cfg.task} ({type(e).__name__}: {str(e)[:200] or 'no message'}); "
                "is its dataset there and non-empty?"
            ) from None
        self.docs = [_json_safe(dict(d)) for d in self.task.eval_docs]
        if not self.docs:
            raise ConfigError(f"task: {cfg.task} has no evaluation docs")
        self.field = cfg.field or self._detect_field()
        if self.field not in self.docs[0] or not isinstance(self.docs[0][self.field], str):
            raise ConfigError(
                f"field: {self.field!r} is not a text field of {cfg.task}'s docs (fields: {sorted(self.docs[0])})"
            )

    def _detect_field(self) -> str:
        text_fields = [k for k, v in self.docs[0].items() if isinstance(v, str)]
        source = self.task.config.doc_to_text
        if isinstance(source, str) and source in text_fields:
            return source
        if isinstance(source, str):
            import jinja2
            from jinja2 import meta

            used = meta.find_undeclared_variables(jinja2.Environment().parse(source))
            candidates = [k for k in text_fields if k in used]
        else:  # a function: the fields whose text ends up in the prompt
            prompt = str(self.task.doc_to_text(self.task.eval_docs[0]))
            candidates = [k for k in text_fields if self.docs[0][k].strip() and self.docs[0][k].strip() in prompt]
        if len(candidates) != 1:
            raise ConfigError(
                f"field: cannot tell which field of {self.cfg.task} to rephrase (its prompt uses "
                f"{candidates or 'none of its text fields'}); give --field, one of {text_fields}"
            )
        return candidates[0]

    def load(self) -> list[Item]:
        return [Item(i, f"{self.cfg.task}/{i}", doc[self.field], doc) for i, doc in enumerate(self.docs)]

    def rephrased_doc(self, item: Item, text: str) -> dict:
        return {**item.doc, self.field: text}

    def check(self, items, candidates):
        reasons = []
        for item, candidate in zip(items, candidates):
            doc = self.rephrased_doc(item, candidate)
            others_equal = {k: v for k, v in doc.items() if k != self.field} == {
                k: v for k, v in item.doc.items() if k != self.field
            }
            reasons.append(
                "the reply was empty"
                if not candidate.strip()
                else None
                if others_equal
                else "fields other than the rephrased one changed"
            )
        return reasons

    def training_text(self, item: Item, rephrased: str) -> str:
        doc = self.rephrased_doc(item, rephrased)
        prompt = self.task.doc_to_text(doc)
        target = self.task.doc_to_target(doc)
        if isinstance(target, int) and self.task.config.output_type == "multiple_choice":
            target = self.task.doc_to_choice(doc)[target]
        elif isinstance(target, list):
            target = target[0]
        return f"{prompt}{self.task.config.target_delimiter}{target}"

    def write_task(self, folder: Path, items: list[Item], accepted: dict[int, str]) -> list[str]:
        config = self.task.config
        splits = {}
        for key in SNAPSHOT_SPLITS:
            split = getattr(config, key, None)
            if split and split not in splits and split != config.test_split:
                docs = self._docs_of(key)
                if docs is not None:
                    splits[split] = docs
        eval_split = config.test_split or config.validation_split
        splits[eval_split] = [
            self.rephrased_doc(i, accepted[i.index])
            for i in sorted(items, key=lambda i: i.index)
            if i.index in accepted
        ]
        (folder / "docs").mkdir(parents=True, exist_ok=True)
        for split, docs in splits.items():
            atomic_write_text(
                folder / "docs" / f"{split}.jsonl",
                "".join(json.dumps(_json_safe(dict(d)), ensure_ascii=False) + "\n" for d in docs),
            )
        name = f"rephrased_{self.cfg.task}"
        source_yaml = Path(self.entry.yaml_path).resolve()
        atomic_write_text(
            folder / f"{name}.yaml",
            (
                f"# Generated by `rephraser rephrase --task {self.cfg.task}`: "
                f"{self.cfg.task}'s own configuration, with its\n"
                f"# docs replaced by a snapshot in which the field '{self.field}' "
                "is rephrased (items without a rephrase left out).\n"
                f"include: {json.dumps(str(source_yaml))}\ntask: {name}\ntag:\n  - rephraser_twin\n"
                "custom_dataset: !function rephraser.rephrase.twin.twin_dataset\nprocess_docs: null\n"
                f"metadata:\n  version: 1.0\n  twin_dir: {json.dumps(str(folder.resolve()))}\n"
            ),
        )
        return [f"lm_eval run --include_path {folder.resolve()} --tasks {name} ..."]

    def _docs_of(self, key: str):
        getter = {
            "validation_split": "validation_docs",
            "training_split": "training_docs",
            "fewshot_split": "fewshot_docs",
        }[key]
        try:
            docs = getattr(self.task, getter)()
        except Exception:  # a split X declares but cannot build: the twin simply goes without it
            return None
        return [_json_safe(dict(d)) for d in docs] if docs is not None else None
