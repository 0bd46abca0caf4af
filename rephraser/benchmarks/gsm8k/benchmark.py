"""GSM-8K (Cobbe et al. 2021) and the LMSYS rephrase of its test set: everything rephraser knows about it.

    bench = GSM8K(data_dir=...)
    bench.docs("original") / bench.docs("rephrased")     # test docs {index, id, question, answer, gold}
    bench.prompt(doc)          "Question: <q>\\nAnswer:"   (the tasks' doc_to_text: byte-identical to lm-eval's gsm8k)
    bench.training_text(doc)   "Question: <q>\\nAnswer: \\n#### N"   (the LMSYS training format)

Data: test (1319) and train (7473, the few-shot pool with worked answers) from --metadata gsm8k_path /
gsm8k_train_path, the mirror (gsm8k/test.jsonl), or the hub (openai/gsm8k); the rephrased test set from
rephrased_gsm8k_path or the pinned LMSYS rephrase_gsm8k.jsonl. Every rephrased line ends in "#### N", which must
be the original's gold at the same index (a misaligned file is refused, naming the line). Empty questions are
placeholders: skipped, counted and logged, never shifted. Ids: `gsm8k/<index>`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks import lmsys, sources
from rephraser.benchmarks.base import Benchmark, Item, log_skipped
from rephraser.benchmarks.checks import dropped_numbers, generic_reason
from rephraser.errors import InputError

REPHRASED = re.compile(r"^Question:\s*(?P<question>.*?)\s*\nAnswer:", re.S)
FINAL = re.compile(r"####\s*(?P<number>-?[\d,.]+)\s*$")
METADATA = {"test": "gsm8k_path", "train": "gsm8k_train_path"}
LMSYS_FILE = "rephrase_gsm8k.jsonl"


def prompt(doc: dict) -> str:
    """doc_to_text of the GSM-8K tasks (the study's and lm-eval's format)."""
    return f"Question: {doc['question']}\nAnswer:"


def gold(answer: str) -> str:
    """The number after '####' of a GSM-8K worked answer, commas removed."""
    return answer.split("####")[-1].strip().replace(",", "")


class GSM8K(Benchmark):
    name = "gsm8k"
    title = "GSM-8K"
    kind = "math"
    metrics = (("exact_match", "strict-match"), ("exact_match", "flexible-extract"))
    folder = Path(__file__).resolve().parent
    fewshot_split = "train"
    labels = ("Rephrased problem", "Rephrased question", "Problem", "Question", "Translation")

    # ------------------------------------------------------------------ data
    def split_rows(self, split: str) -> list[dict]:
        """GSM-8K `test` or `train`: {"question", "answer" (worked, '#### N')}."""
        key, what = METADATA[split], f"GSM-8K {split}"
        named = sources.explicit(f"metadata {key}", self.metadata.get(key))
        if named:
            return sources.loaded(what, _question_answer(named, sources.read_jsonl(named)), f"metadata {key} {named}")
        tried: list[str] = [f"metadata {key}: not set"]
        found = sources.first_file([sources.mirror_file(self.data_dir, "gsm8k", f"{split}.jsonl")], tried)
        if found:
            return sources.loaded(
                what, _question_answer(found[1], sources.read_jsonl(found[1])), " ".join(map(str, found))
            )
        rows = sources.from_hub("openai/gsm8k", "main", split, tried)
        if rows is not None:
            return sources.loaded(what, _question_answer("openai/gsm8k", rows), "Hugging Face hub openai/gsm8k")
        hint = f'give --metadata \'{{"{key}": "{split}.jsonl"}}\' or set REPHRASER_DATA_DIR'
        raise sources.DataNotFound(f"{what} set", tried, hint)

    def _docs(self, split: str) -> list[dict]:
        docs = [{"index": i, **r, "gold": gold(r["answer"])} for i, r in enumerate(self.split_rows(split))]
        return [{**d, "id": self.item_id(d)} for d in docs] if split == "test" else docs

    def items(self) -> list[Item]:
        return [Item(d["index"], d["id"], d["question"], d) for d in self._docs("test")]

    def lmsys_lines(self) -> tuple[Path, list[str]]:
        path = lmsys.lmsys_file(
            LMSYS_FILE, self.metadata.get("rephrased_gsm8k_path"), self.data_dir, "metadata rephrased_gsm8k_path"
        )
        return path, sources.read_rephrased_texts(path)

    def splits(self, variant: str = "original", subset: str | None = None) -> dict[str, list[dict]]:
        test, train = self._docs("test"), self._docs("train")
        if variant == "original":
            return {"test": test, "train": train}
        if variant != "rephrased":
            raise ValueError(f"GSM-8K has no variant {variant!r}")
        path, lines = self.lmsys_lines()
        sources.check_aligned(path, lines, len(test), "GSM-8K test")
        kept, empty = [], []
        for doc, text in zip(test, lines):
            _check_answer(path, doc, text)
            match = REPHRASED.match(text)
            if not match or not match["question"].strip():
                empty.append(doc["index"])
                continue
            kept.append({**doc, "question": match["question"]})
        log_skipped("rephrased_gsm8k", empty, len(test), "empty placeholders or no question")
        return {"test": kept, "train": train}

    # ------------------------------------------------------------------ formats
    def prompt(self, doc: dict) -> str:
        return prompt(doc)

    def target(self, doc: dict) -> str:
        return f" \n#### {doc['gold']}"

    row_key = "question"
    row_fields = ("question", "answer")

    @staticmethod
    def row(fields: dict) -> tuple[str, str]:
        """A GSM-8K row with its worked answer: the evaluated prompt, then " <answer>"."""
        return prompt(fields), " " + fields["answer"]

    def training_texts(self, kind: str, language: str | None = None) -> dict[str, str]:
        if kind == "rephrased":  # the LMSYS line itself: the study's training text (15 lines keep "1,200"-style
            usable = {d["id"] for d in self.docs("rephrased")}  # numbers or an extra newline: kept as the study had)
            _, lines = self.lmsys_lines()
            return {f"gsm8k/{i}": line for i, line in enumerate(lines) if f"gsm8k/{i}" in usable}
        return super().training_texts(kind, language)

    # ------------------------------------------------------------------ rephrase
    def check(self, items: list[Item], candidates: list[str], translate: str | None = None) -> list[str | None]:
        return [generic_reason(i.text, c, translate) or dropped_numbers(i.text, c) for i, c in zip(items, candidates)]

    def rephrased_training_text(self, item: Item, rephrased: str) -> str:
        return self.training_text({**item.doc, "question": rephrased})

    def write_twin(self, folder: Path, items: list[Item], accepted: dict[int, str], translate: str | None) -> list[str]:
        path = folder / LMSYS_FILE
        lines = [
            json.dumps(
                {"text": self.rephrased_training_text(i, accepted[i.index]) if i.index in accepted else ""},
                ensure_ascii=False,
            )
            + "\n"
            for i in sorted(items, key=lambda i: i.index)
        ]
        atomic_write_text(path, "".join(lines))
        metadata = json.dumps({"rephrased_gsm8k_path": str(path.resolve())})
        return [f"lm_eval run --tasks rephrased_gsm8k --metadata '{metadata}' ..."]


def _question_answer(path, rows: list[dict]) -> list[dict]:
    for i, r in enumerate(rows):
        if not (isinstance(r, dict) and isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)):
            raise InputError(path, "expected an object with string fields 'question' and 'answer'", i + 1)
    return [{"question": r["question"], "answer": r["answer"]} for r in rows]


def _check_answer(path, doc: dict, text: str) -> None:
    """The LMSYS lines end in '#### N': it must be the original's gold at the same index, or the file is
    misaligned (every score would be against the wrong gold)."""
    final = FINAL.search(text)
    if final and final["number"].replace(",", "").rstrip(".") != doc["gold"]:
        raise InputError(
            path,
            f"ends in '#### {final['number']}' but the GSM-8K test item at index {doc['index']} has gold "
            f"{doc['gold']}: the file is not index-aligned with the test set",
            doc["index"] + 1,
            "text",
        )
