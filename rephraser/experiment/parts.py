"""The two parts of each benchmark's test set, and what each condition trains on.

    parts = split(cfg, "gsm8k")          # {"contaminated": [ids], "clean": [ids]}: disjoint, seeded
    texts = training_texts(cfg, "gsm8k", condition, parts["contaminated"])
    part_dataset(...)                    # lm-eval custom_dataset: one variant of the benchmark, one part

Items are identified as `gsm8k/<index>`, `<subject>/<index>` (MMLU, the 3 subjects LMSYS rephrased) and
`HumanEval/<n>`. Only items that both the original and the rephrased task score are eligible (the rephrased
tasks skip empty placeholders, invalid programs and MMLU questions that give their answer away), so every item
of a part is scored in both variants. The parts are the first `contaminated` and the next `clean` items of a
shuffle of the eligible ids seeded by (seed, benchmark): disjoint by construction. Training texts are the study's
formats for exactly the contaminated items: the LMSYS rephrased line (GSM-8K `Question: ...\\nAnswer: \\n#### N`,
HumanEval programs), the original item in the same format, the translation, both (mix), or a file of texts
aligned with the benchmark (`data:`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets

from rephraser.data import sources
from rephraser.data.sources import MMLU_REPHRASED_SUBJECTS
from rephraser.errors import ConfigError, InputError

VARIANTS = ("original", "rephrased")


def variant_docs(benchmark: str, variant: str, **metadata) -> list[dict]:
    """The test docs of one variant, each with its `id`, as our lm-eval tasks build them."""
    from rephraser.tasks import common

    if benchmark == "gsm8k":
        return [{**d, "id": f"gsm8k/{d['index']}"} for d in common.gsm8k_dataset(variant, **metadata)["test"]]
    if benchmark == "humaneval":
        return [{**d, "id": d["task_id"]} for d in common.humaneval_dataset(variant, **metadata)["test"]]
    docs = []
    for subject in MMLU_REPHRASED_SUBJECTS:
        docs += [
            {**d, "id": f"{subject}/{d['index']}"} for d in common.mmlu_dataset(subject, variant, **metadata)["test"]
        ]
    return docs


def eligible_ids(benchmark: str, data_dir: str | None) -> list[str]:
    kw = {"data_dir": data_dir} if data_dir else {}
    original = [d["id"] for d in variant_docs(benchmark, "original", **kw)]
    rephrased = {d["id"] for d in variant_docs(benchmark, "rephrased", **kw)}
    return [i for i in original if i in rephrased]


def split(cfg, benchmark: str) -> dict[str, list[str]]:
    eligible = eligible_ids(benchmark, cfg.data_dir)
    if cfg.contaminated_ids is not None or cfg.clean_ids is not None:
        parts = {
            "contaminated": [i for i in (cfg.contaminated_ids or []) if i.split("/")[0] in _prefixes(benchmark)],
            "clean": [i for i in (cfg.clean_ids or []) if i.split("/")[0] in _prefixes(benchmark)],
        }
        missing = sorted(set(parts["contaminated"] + parts["clean"]) - set(eligible))
        if missing:
            raise ConfigError(
                f"contaminated_ids / clean_ids: not usable {benchmark} items (absent from one variant): {missing[:5]}"
            )
        return parts
    wanted = cfg.contaminated + cfg.clean
    if wanted > len(eligible):
        raise ConfigError(
            f"contaminated + clean = {wanted} items, but {benchmark} has only {len(eligible)} that both its "
            "original and its rephrased task score"
        )
    order = sorted(eligible)
    random.Random(f"{cfg.seed}-{benchmark}").shuffle(order)
    return {"contaminated": order[: cfg.contaminated], "clean": order[cfg.contaminated : wanted]}


def _prefixes(benchmark: str) -> tuple[str, ...]:
    return {"gsm8k": ("gsm8k",), "humaneval": ("HumanEval",), "mmlu": MMLU_REPHRASED_SUBJECTS}[benchmark]


def _mmlu_text(question: str, choices: list[str], answer: int) -> str:
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", choices))
    return f"{question.strip()}{options}\nAnswer: {'ABCD'[answer]}"


def training_texts(cfg, benchmark: str, condition, ids: list[str]) -> list[str]:
    """The texts a condition trains on: one (two for mix) per contaminated item, in the part's order."""
    if condition.train_on == "none" or not ids:
        return []
    if condition.data:
        return _from_file(condition.data, benchmark, ids)
    kw = {"data_dir": cfg.data_dir} if cfg.data_dir else {}
    kinds = ("rephrased", "original") if condition.train_on == "mix" else (condition.train_on,)
    texts = []
    for kind in kinds:
        by_id = _texts_by_id(benchmark, kind, condition.language, cfg.data_dir, kw)
        texts += [by_id[i] for i in ids]
    return texts


def _texts_by_id(benchmark: str, kind: str, language: str | None, data_dir, kw) -> dict[str, str]:
    if kind == "translated":
        return _translated(benchmark, language, data_dir)
    docs = {d["id"]: d for d in variant_docs(benchmark, kind, **kw)}
    if benchmark == "gsm8k":
        if kind == "rephrased":  # the LMSYS line itself: the study's training text
            path = sources.lmsys_rephrased("rephrase_gsm8k.jsonl", data_dir=data_dir)
            lines = sources.read_rephrased_texts(path)
            return {i: lines[int(i.split("/")[1])] for i in docs}
        return {i: f"Question: {d['question']}\nAnswer: \n#### {d['gold']}" for i, d in docs.items()}
    if benchmark == "humaneval":
        return {i: d["prompt"] + d["gold"] for i, d in docs.items()}
    return {i: _mmlu_text(d["question"], d["choices"], d["answer"]) for i, d in docs.items()}


def _translated(benchmark: str, language: str | None, data_dir) -> dict[str, str]:
    if benchmark == "mmlu":
        out = {}
        for subject in MMLU_REPHRASED_SUBJECTS:
            path = sources.lmsys_rephrased(f"{subject}_test_chinese.jsonl", data_dir=data_dir)
            out.update({f"{subject}/{k}": t for k, t in enumerate(sources.read_rephrased_texts(path))})
        return out
    if benchmark == "humaneval":
        language = language or "c"
        if language not in ("c", "js"):
            raise ConfigError(f"conditions: language {language!r}: the LMSYS HumanEval translations are c and js")
        problems = sources.humaneval_problems()
        lines = sources.read_rephrased_texts(sources.lmsys_rephrased(f"humaneval_{language}.jsonl", data_dir=data_dir))
        return {p["task_id"]: t for p, t in zip(problems, lines)}
    raise ConfigError(
        "conditions: no translated GSM-8K exists; make one with `rephraser rephrase --benchmark gsm8k "
        "--translate LANG` and give its train.jsonl as the condition's data"
    )


def _from_file(path: str, benchmark: str, ids: list[str]) -> list[str]:
    if benchmark == "mmlu":
        raise ConfigError("conditions: data files are aligned by index: use them with gsm8k or humaneval")
    texts = sources.read_rephrased_texts(path)
    out = []
    for i in ids:
        k = int(i.split("/")[1])
        if k >= len(texts) or not texts[k].strip():
            raise InputError(path, f"no training text for {i} (line {k + 1})")
        out.append(texts[k])
    return out


def part_dataset(benchmark: str, variant: str, part: str, part_file: str, subject: str | None = None, **metadata):
    """lm-eval custom_dataset: one variant of a benchmark restricted to one part (for MMLU, to one subject)."""
    from rephraser.tasks import common

    ids = set(json.loads(Path(part_file).read_text())[benchmark][part])
    keep = {k: v for k, v in metadata.items() if k in ("data_dir", "gsm8k_path", "gsm8k_train_path", "mmlu_dir")}
    if benchmark == "gsm8k":
        full, key = common.gsm8k_dataset(variant, **keep), lambda d: f"gsm8k/{d['index']}"
    elif benchmark == "humaneval":
        full, key = common.humaneval_dataset(variant, **keep), lambda d: d["task_id"]
    else:
        full, key = common.mmlu_dataset(subject, variant, **keep), lambda d: f"{subject}/{d['index']}"
    splits = {name: rows for name, rows in full.items()}
    splits["test"] = full["test"].filter(lambda d: key(d) in ids)
    return datasets.DatasetDict(splits)
