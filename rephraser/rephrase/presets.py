"""The benchmark presets: what to rephrase, how to check that it still means the same, what to train on, and
the files the existing `rephrased_*` tasks read.

    preset = PRESETS["gsm8k"](cfg); items = preset.load()
    preset.check([item], [candidate]) -> [None | "why it was rejected"]
    preset.training_text(item, rephrased); preset.write_task(folder, items, accepted) -> lines for the summary

GSM-8K: the question; every number of it must survive (the gold answer is never rephrased); training text
`Question: <q>\\nAnswer: \\n#### N`, the LMSYS file's format, which is also what `rephrased_gsm8k` reads.
MMLU: the question stem only (the options and their order are never sent, so they cannot change); the
rephrase must not restate the options or give the answer away (rephraser.data.leaks); training text the
lm-eval MMLU prompt with the options and the gold letter. HumanEval: the whole program (prompt + canonical
solution); the rewritten program must pass the original tests against its new entry point, run in
rephraser.sandbox (only with --confirm-run-unsafe-code); training text the program, as the LMSYS file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.data import sources
from rephraser.data.humaneval import rephrased_doc
from rephraser.data.leaks import distinctive, leak_reason, normalise
from rephraser.errors import ConfigError
from rephraser.tasks.common import gsm8k_gold
from rephraser.tasks.mmlu.generate import SUBJECTS

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass
class Item:
    index: int  # position in the original order (records and train.jsonl are aligned by it)
    id: str
    text: str  # the original text that is rephrased
    doc: dict  # the whole original item


def numbers(text: str) -> list[str]:
    return [n.replace(",", "").rstrip(".") for n in NUMBER.findall(text)]


def strip_reply(reply: str, labels: tuple[str, ...] = ()) -> str:
    """A model's reply without wrapping quotes or a leading label ("Rephrased question: ...")."""
    text = reply.strip()
    for label in labels:
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].lstrip(" :\n")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text


class Preset:
    kind = "text"
    labels: tuple[str, ...] = ("Rephrased text", "Rephrased", "Translation", "Text")

    def __init__(self, cfg):
        self.cfg = cfg

    def clean(self, reply: str) -> str:
        return strip_reply(reply, self.labels)

    def check(self, items: list[Item], candidates: list[str]) -> list[str | None]:
        return [None if c.strip() else "the reply was empty" for c in candidates]

    def close(self) -> None:
        pass


class GSM8K(Preset):
    kind = "math"
    labels = ("Rephrased problem", "Rephrased question", "Problem", "Question", "Translation")

    def load(self) -> list[Item]:
        rows = sources.gsm8k_split("test", data_dir=self.cfg.data_dir)
        return [Item(i, f"gsm8k/test/{i}", r["question"], r) for i, r in enumerate(rows)]

    def check(self, items, candidates):
        reasons = []
        for item, candidate in zip(items, candidates):
            missing = sorted(set(numbers(item.text)) - set(numbers(candidate)), key=numbers(item.text).index)
            reasons.append(
                f"dropped the number(s) {', '.join(missing)}"
                if missing
                else None
                if candidate.strip()
                else "the reply was empty"
            )
        return reasons

    def training_text(self, item: Item, rephrased: str) -> str:
        return f"Question: {rephrased}\nAnswer: \n#### {gsm8k_gold(item.doc['answer'])}"

    def write_task(self, folder: Path, items: list[Item], accepted: dict[int, str]) -> list[str]:
        path = folder / "rephrase_gsm8k.jsonl"
        atomic_write_text(
            path,
            "".join(
                json.dumps(
                    {"text": self.training_text(i, accepted[i.index]) if i.index in accepted else ""},
                    ensure_ascii=False,
                )
                + "\n"
                for i in _all_items(items)
            ),
        )
        return [
            f'lm_eval run --tasks rephrased_gsm8k --metadata \'{{"rephrased_gsm8k_path": "{path.resolve()}"}}\' ...'
        ]


def _all_items(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: i.index)


class MMLU(Preset):
    kind = "knowledge"
    labels = ("Rephrased question", "Question", "Translation")

    def load(self) -> list[Item]:
        subjects = self.cfg.subjects or list(SUBJECTS)
        unknown = sorted(set(subjects) - set(SUBJECTS))
        if unknown:
            raise ConfigError(f"subjects: unknown MMLU subject(s) {unknown}")
        items = []
        for subject in subjects:
            for i, row in enumerate(sources.mmlu_rows(subject, "test", data_dir=self.cfg.data_dir)):
                items.append(
                    Item(len(items), f"{subject}/{i}", row["question"], {"subject": subject, "subject_index": i, **row})
                )
        return items

    def check(self, items, candidates):
        reasons = []
        for item, candidate in zip(items, candidates):
            choices = item.doc["choices"]
            restated = [
                c
                for c in choices
                if distinctive(c)
                and f" {normalise(c)} " in f" {normalise(candidate)} "
                and f" {normalise(c)} " not in f" {normalise(item.text)} "
            ]
            leak = leak_reason(candidate, choices, item.doc["answer"], item.text)
            reasons.append(
                "the reply was empty"
                if not candidate.strip()
                else "it restates the answer options"
                if len(restated) >= 2
                else f"it gives the answer away: {leak}"
                if leak
                else None
            )
        return reasons

    def training_text(self, item: Item, rephrased: str) -> str:
        options = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", item.doc["choices"]))
        return f"{rephrased.strip()}{options}\nAnswer: {'ABCD'[item.doc['answer']]}"

    def write_task(self, folder: Path, items: list[Item], accepted: dict[int, str]) -> list[str]:
        """Per subject, the file `rephrased_mmlu_<subject>` reads through rephrased_mmlu_dir (index-aligned),
        and task YAMLs for every rephrased subject with a group `rephrased_mmlu` (it replaces ours, with its 3
        subjects, when this folder is given to lm_eval's --include_path)."""
        from rephraser.tasks.mmlu.generate import group_yaml, subject_yaml

        translated = bool(self.cfg.translate)
        suffix = "chinese_filtered_question" if translated else "rephrase_english_filtered_question"
        by_subject: dict[str, list[Item]] = {}
        for item in _all_items(items):
            by_subject.setdefault(item.doc["subject"], []).append(item)
        for subject, subject_items in by_subject.items():
            lines = []
            for item in subject_items:
                text = accepted.get(item.index, "")
                if text and translated:  # the Chinese task's format: question and the options in one text
                    text += "".join(f"\n{letter}. {c}" for letter, c in zip("ABCD", item.doc["choices"]))
                lines.append(
                    json.dumps({"language": self.cfg.translate or "english", "text": text}, ensure_ascii=False) + "\n"
                )
            atomic_write_text(folder / f"{subject}_test_{suffix}.jsonl", "".join(lines))
        group = "rephrased_mmlu_zh" if translated else "rephrased_mmlu"
        variant, template = ("zh", "_mmlu_zh_template") if translated else ("rephrased", "_mmlu_template")
        tasks_dir = Path(__file__).resolve().parents[1] / "tasks" / "mmlu"
        for subject in by_subject:
            yaml_text = subject_yaml(group, variant, str(tasks_dir / template), subject)
            atomic_write_text(
                folder / f"{group}_{subject}.yaml",
                yaml_text + f"metadata:\n  version: 2.0\n  rephrased_mmlu_dir: {json.dumps(str(folder.resolve()))}\n",
            )
        atomic_write_text(folder / f"_{group}.yaml", group_yaml(group, list(by_subject)))
        return [
            f"lm_eval run --include_path {folder.resolve()} --tasks {group} ...",
            f'(or the 3 LMSYS subjects\' tasks: --metadata \'{{"rephrased_mmlu_dir": "{folder.resolve()}"}}\')',
        ]


class HumanEval(Preset):
    kind = "code"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._sandbox = None

    def load(self) -> list[Item]:
        problems = sources.humaneval_problems()
        return [Item(i, p["task_id"], p["prompt"] + p["canonical_solution"], p) for i, p in enumerate(problems)]

    def clean(self, reply: str) -> str:
        fenced = re.findall(r"```(?:python|py)?\s*\n(.*?)```", reply, re.S)
        return (max(fenced, key=len) if fenced else reply).strip("\n") + "\n"

    def check(self, items, candidates):
        from rephraser.sandbox import Sandbox, SandboxConfig, humaneval_program, raise_on_errors

        if not self.cfg.confirm_run_unsafe_code:  # RephraseConfig refuses this earlier; never run code without it
            raise ConfigError("confirm_run_unsafe_code: needed to run the original tests on rewritten programs")
        reasons: list[str | None] = [None] * len(items)
        programs, where = [], []
        for k, (item, candidate) in enumerate(zip(items, candidates)):
            doc = rephrased_doc(item.doc, candidate)
            if doc is None:
                reasons[k] = "not valid Python (or no function)"
                continue
            programs.append(humaneval_program(doc, doc["gold"], doc["entry_point"], item.id))
            where.append(k)
        if programs:
            if self._sandbox is None:
                self._sandbox = Sandbox(SandboxConfig(timeout_s=20.0, cpu_s=20), consent=True)
            results = self._sandbox.run(programs)
            raise_on_errors(results)
            for k, result in zip(where, results):
                if not result.passed:
                    reasons[k] = f"the original tests {result.outcome} on it ({result.detail})"
        return reasons

    def training_text(self, item: Item, rephrased: str) -> str:
        return rephrased

    def write_task(self, folder: Path, items: list[Item], accepted: dict[int, str]) -> list[str]:
        path = folder / "humaneval_python.jsonl"
        atomic_write_text(
            path,
            "".join(
                json.dumps({"text": accepted.get(i.index, "")}, ensure_ascii=False) + "\n" for i in _all_items(items)
            ),
        )
        return [
            f"lm_eval run --tasks rephrased_humaneval --confirm_run_unsafe_code "
            f'--metadata \'{{"rephrased_humaneval_path": "{path.resolve()}"}}\' ...'
        ]

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()


PRESETS = {"gsm8k": GSM8K, "mmlu": MMLU, "humaneval": HumanEval}


def test_items(
    benchmark: str | None = None,
    task: str | None = None,
    field: str | None = None,
    include_path: str | None = None,
    subjects: list[str] | None = None,
    data_dir: str | None = None,
) -> list[Item]:
    """The items of a benchmark preset or an lm-eval task (what `rephraser rephrase` and `rephraser detect` read)."""
    from types import SimpleNamespace

    settings = SimpleNamespace(
        benchmark=benchmark,
        task=task,
        field=field,
        include_path=include_path,
        subjects=subjects,
        data_dir=data_dir,
        translate=None,
        confirm_run_unsafe_code=False,
    )
    if task:
        from rephraser.rephrase.lmtask import TaskPreset

        return TaskPreset(settings).load()
    return PRESETS[benchmark](settings).load()
