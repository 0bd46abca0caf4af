"""MMLU (Hendrycks et al. 2021) and the LMSYS rephrases / Chinese translations of 3 of its subjects.

    bench = MMLU(subjects=["sociology"], data_dir=...)
    bench.docs("original" | "rephrased" | "zh")   # test docs {index, id, subject, question, choices, answer}
    bench.prompt(doc)          "<question>\\nA. <a>\\nB. <b>\\nC. <c>\\nD. <d>\\nAnswer:"   (lm-eval's MMLU prompt)
    bench.training_text(doc)   the prompt, then " <gold letter>"

Subjects: `subjects` if given; otherwise all 57 for items() (what `rephrase` and `detect` read), and for the
evaluated variants the subjects that have a rephrased file (the 3 LMSYS subjects, or those in rephrased_mmlu_dir).
Data: test and dev CSVs (dev: the few-shot pool) from --metadata mmlu_dir, the mirror (mmlu/<split>/), or the hub
(cais/mmlu); rephrases from rephrased_mmlu_dir or the pinned LMSYS files. Rephrased questions that give their answer
away (leaks.py) are left out and counted unless include_leaking_items. The Chinese file carries the options in its
text, in the original order, with the original gold letter. Ids: `mmlu/<subject>/<index>`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks import lmsys, sources
from rephraser.benchmarks.base import Benchmark, Item, log_skipped
from rephraser.benchmarks.checks import generic_reason
from rephraser.benchmarks.mmlu.leaks import distinctive, leak_reason, normalise
from rephraser.benchmarks.mmlu.subjects import LMSYS_SUBJECTS, SUBJECTS
from rephraser.errors import ConfigError, InputError

LETTERS = "ABCD"
SUFFIX = {"rephrased": "rephrase_english_filtered_question", "zh": "chinese_filtered_question"}
TASK = {"rephrased": "rephrased_mmlu", "zh": "rephrased_mmlu_zh"}


def options(choices: list[str]) -> str:
    """The four options as every MMLU prompt writes them: "\\nA. ...\\nB. ...\\nC. ...\\nD. ..."."""
    return "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, choices))


def description(subject: str) -> str:
    """lm-eval's MMLU description, which every task of the subject puts before each prompt (generate.py writes it
    into the YAMLs from here): part of the evaluated text, so part of the training text."""
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def prompt(doc: dict) -> str:
    """doc_to_text of the English MMLU tasks (lm-eval's mmlu format)."""
    return f"{doc['question'].strip()}{options(doc['choices'])}\nAnswer:"


def prompt_zh(doc: dict) -> str:
    """doc_to_text of the Chinese tasks: the question already carries its options (the LMSYS file's format)."""
    return f"{doc['question'].strip()}\n答案："


class MMLU(Benchmark):
    name = "mmlu"
    title = "MMLU"
    kind = "knowledge"
    metrics = (("acc", "none"),)
    folder = Path(__file__).resolve().parent
    fewshot_split = "dev"
    train_kinds = ("original", "rephrased", "translated")
    languages = ("zh",)
    subject_names = SUBJECTS
    labels = ("Rephrased question", "Question", "Translation")
    f1_subsets = ("abstract_algebra", "sociology", "high_school_us_history")  # the study's table order
    f1_columns_names = ("test", "rephrased", "zh")
    f1_judge_kind = "crosslingual"  # the columns include the Chinese translation

    def __init__(self, data_dir: str | None = None, subjects: list[str] | None = None, **metadata):
        super().__init__(data_dir, subjects, **metadata)
        unknown = sorted(set(subjects or ()) - set(SUBJECTS))
        if unknown:
            raise ConfigError(f"subjects: unknown MMLU subject(s) {unknown}")

    # ------------------------------------------------------------------ data
    def rows(self, subject: str, split: str) -> list[dict]:
        """One subject's split: {"question", "choices", "answer" (0-3)}."""
        what = f"MMLU {subject} ({split})"
        named = sources.explicit("metadata mmlu_dir", self.metadata.get("mmlu_dir"), "directory")
        if named:
            path = sources.explicit("metadata mmlu_dir", named / split / f"{subject}_{split}.csv")
            return sources.loaded(what, read_csv(path), f"metadata mmlu_dir {path}")
        tried: list[str] = ["metadata mmlu_dir: not set"]
        found = sources.first_file([sources.mirror_file(self.data_dir, "mmlu", split, f"{subject}_{split}.csv")], tried)
        if found:
            return sources.loaded(what, read_csv(found[1]), " ".join(map(str, found)))
        rows = sources.from_hub("cais/mmlu", subject, split, tried)
        if rows is not None:
            rows = [
                {"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"])} for r in rows
            ]
            return sources.loaded(what, rows, "Hugging Face hub cais/mmlu")
        hint = "give --metadata '{\"mmlu_dir\": DIR}' (DIR/test/*.csv) or set REPHRASER_DATA_DIR"
        raise sources.DataNotFound(what, tried, hint)

    def item_id(self, doc: dict) -> str:
        return f"mmlu/{doc['subject']}/{doc['index']}"

    def subset_of(self, item_id: str) -> str | None:
        return item_id.split("/")[1]

    def _docs(self, subject: str, split: str) -> list[dict]:
        docs = [{"index": i, "subject": subject, **r} for i, r in enumerate(self.rows(subject, split))]
        return [{**d, "id": self.item_id(d)} for d in docs] if split == "test" else docs

    def items(self) -> list[Item]:
        docs = [d for subject in self.subjects or SUBJECTS for d in self._docs(subject, "test")]
        return [Item(k, d["id"], d["question"], d) for k, d in enumerate(docs)]

    def subsets(self) -> list[str | None]:
        if self.subjects:
            return list(self.subjects)
        folder = self.metadata.get("rephrased_mmlu_dir")
        if folder and Path(folder).is_dir():
            return [s for s in SUBJECTS if (Path(folder) / f"{s}_test_{SUFFIX['rephrased']}.jsonl").is_file()]
        return list(LMSYS_SUBJECTS)

    def splits(self, variant: str = "original", subset: str | None = None) -> dict[str, list[dict]]:
        if subset is None:
            raise ValueError("MMLU: its tasks are per subject")
        rows, dev = self._docs(subset, "test"), self._docs(subset, "dev")
        if variant == "original":
            return {"test": rows, "dev": dev}
        texts, path = self._lmsys_texts(subset, SUFFIX[variant], len(rows))
        task = f"{TASK[variant]}_{subset}"
        include_leaks = bool(self.metadata.get("include_leaking_items", False))
        kept, empty, leaking = [], [], []
        for row, text in zip(rows, texts):
            if not text.strip():
                empty.append(row["index"])
            elif (
                variant == "rephrased"
                and not include_leaks
                and leak_reason(text, row["choices"], row["answer"], row["question"])
            ):
                leaking.append(row["index"])
            else:
                kept.append({**row, "question": text, "original_question": row["question"]})
        log_skipped(task, empty, len(rows), "empty placeholders")
        why = (
            "the rephrased question gives its answer away (rephraser.benchmarks.mmlu.leaks; --metadata "
            "'{\"include_leaking_items\": true}' keeps them)"
        )
        log_skipped(task, leaking, len(rows), why)
        # No Chinese dev set exists: the Chinese task's few-shot examples are the English dev questions, with their
        # options, in the Chinese template (question + options + "答案：" + letter), the same shape as its test items.
        return {"test": kept, "dev": [_with_options(r) for r in dev] if variant == "zh" else dev}

    def _lmsys_texts(self, subject: str, suffix: str, count: int) -> tuple[list[str], Path]:
        name = f"{subject}_test_{suffix}.jsonl"
        folder = self.metadata.get("rephrased_mmlu_dir")
        path = lmsys.lmsys_file(
            name, f"{folder}/{name}" if folder else None, self.data_dir, "metadata rephrased_mmlu_dir"
        )
        texts = sources.read_rephrased_texts(path)
        sources.check_aligned(path, texts, count, f"MMLU {subject} test")
        return texts, path

    # ------------------------------------------------------------------ formats
    def prompt(self, doc: dict) -> str:
        return prompt(doc)

    def description(self, doc: dict) -> str:
        return description(doc["subject"])

    def target(self, doc: dict) -> str:
        return f" {LETTERS[doc['answer']]}"

    def training_texts(self, kind: str, language: str | None = None) -> dict[str, str]:
        if kind != "translated":
            return super().training_texts(kind, language)
        if (language or "zh") != "zh":
            raise ConfigError(f"conditions: language {language!r}: the LMSYS MMLU translation is zh (Chinese)")
        out = {}
        for subject in self.subsets():  # question + "\n答案：<answer text>": the study's Chinese training text
            rows = self._docs(subject, "test")
            texts, _ = self._lmsys_texts(subject, "chinese", len(rows))
            out.update({row["id"]: text for row, text in zip(rows, texts) if text.strip()})
        return out

    # ------------------------------------------------------------------ rephrase
    def check(self, items: list[Item], candidates: list[str], translate: str | None = None) -> list[str | None]:
        return [generic_reason(i.text, c, translate) or _mmlu_reason(i, c) for i, c in zip(items, candidates)]

    def rephrased_training_text(self, item: Item, rephrased: str) -> str:
        return self.training_text({**item.doc, "question": rephrased})

    def write_twin(self, folder: Path, items: list[Item], accepted: dict[int, str], translate: str | None) -> list[str]:
        """Per subject, the file `rephrased_mmlu_<subject>` reads through rephrased_mmlu_dir (index-aligned),
        and task YAMLs for every rephrased subject with a group `rephrased_mmlu` (it replaces ours, with its 3
        subjects, when this folder is given to lm_eval's --include_path)."""
        from rephraser.benchmarks.mmlu.generate import group_yaml, subject_yaml

        variant = "zh" if translate else "rephrased"
        by_subject: dict[str, list[Item]] = {}
        for item in sorted(items, key=lambda i: i.index):
            by_subject.setdefault(item.doc["subject"], []).append(item)
        for subject, subject_items in by_subject.items():
            lines = []
            for item in subject_items:
                text = accepted.get(item.index, "")
                if text and translate:  # the Chinese task's format: question and the options in one text
                    text += options(item.doc["choices"])
                lines.append(json.dumps({"language": translate or "english", "text": text}, ensure_ascii=False) + "\n")
            atomic_write_text(folder / f"{subject}_test_{SUFFIX[variant]}.jsonl", "".join(lines))
        group = TASK[variant]
        template = self.folder / ("_mmlu_zh_template" if translate else "_mmlu_template")
        for subject in by_subject:
            metadata = f"metadata:\n  version: 2.0\n  rephrased_mmlu_dir: {json.dumps(str(folder.resolve()))}\n"
            atomic_write_text(
                folder / f"{group}_{subject}.yaml", subject_yaml(group, variant, str(template), subject) + metadata
            )
        atomic_write_text(folder / f"_{group}.yaml", group_yaml(group, list(by_subject)))
        return [
            f"lm_eval run --include_path {folder.resolve()} --tasks {group} ...",
            f'(or the 3 LMSYS subjects\' tasks: --metadata \'{{"rephrased_mmlu_dir": "{folder.resolve()}"}}\')',
        ]

    # ------------------------------------------------------------------ detect
    def f1_columns(self, subset: str | None) -> tuple[list[str], dict[str, list[str]]]:
        originals = [r["question"] for r in self.rows(subset, "test")]
        rephrased, _ = self._lmsys_texts(subset, SUFFIX["rephrased"], len(originals))
        chinese, _ = self._lmsys_texts(subset, SUFFIX["zh"], len(originals))
        return originals, {
            "test": originals,
            "rephrased": [t.split("\nAnswer:")[0] for t in rephrased],
            "zh": [t.split("\n答")[0] for t in chinese],
        }


def read_csv(path: Path) -> list[dict]:
    """The MMLU release CSVs: no header; question, A, B, C, D, answer letter (fields may hold newlines)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as fh:
        for line_no, rec in enumerate(csv.reader(fh), start=1):
            if len(rec) != 6 or not rec[5] or rec[5] not in LETTERS:
                raise InputError(path, f"expected question, A, B, C, D, answer letter; got {len(rec)} fields", line_no)
            rows.append({"question": rec[0], "choices": rec[1:5], "answer": LETTERS.index(rec[5])})
    return rows


def _with_options(row: dict) -> dict:
    """A dev example in the Chinese template's shape: options inside the question text, as in the LMSYS file."""
    return {**row, "question": row["question"].strip() + options(row["choices"])}


def _mmlu_reason(item: Item, candidate: str) -> str | None:
    """The stem only is rephrased (options are never sent): it must not restate the options or give the answer."""
    choices = item.doc["choices"]

    def states(text: str, option: str) -> bool:
        return f" {normalise(option)} " in f" {normalise(text)} "

    restated = [c for c in choices if distinctive(c) and states(candidate, c) and not states(item.text, c)]
    if len(restated) >= 2:
        return "it restates the answer options"
    leak = leak_reason(candidate, choices, item.doc["answer"], item.text)
    return f"it gives the answer away: {leak}" if leak else None
