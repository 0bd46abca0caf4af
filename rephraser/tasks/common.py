"""Shared logic of the task folders: datasets for lm-eval's `custom_dataset`, and HumanEval scoring.

The YAMLs name these with the dotted `!function rephraser.tasks.common.<fn>` form. lm-eval calls a
custom_dataset with the task's metadata (and `--metadata`) plus dataset_kwargs as keyword arguments, so
each function takes what it needs and ignores the rest. Rephrased records are index-aligned with their
originals: the gold answer always comes from the original at the same index, and empty placeholders are
skipped (and counted in a warning), never shifted.
"""

from __future__ import annotations

import ast
import json
import logging
import re

import datasets

from rephraser.data import sources
from rephraser.errors import InputError

log = logging.getLogger("rephraser.tasks")


def _dataset(splits: dict[str, list[dict]]) -> datasets.DatasetDict:
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def _warn_skipped(task: str, skipped: list, total: int, why: str = "are empty placeholders") -> None:
    if skipped:
        log.warning("%s: %d of %d rephrased records %s and were skipped (%s)", task, len(skipped), total, why, skipped[:20])


# ---------------------------------------------------------------- GSM-8K

GSM8K_REPHRASED = re.compile(r"^Question:\s*(?P<question>.*?)\s*\nAnswer:", re.S)


def gsm8k_gold(answer: str) -> str:
    """The number after '####' of a GSM-8K worked answer, commas removed."""
    return answer.split("####")[-1].strip().replace(",", "")


def gsm8k_dataset(variant: str = "original", gsm8k_path=None, rephrased_gsm8k_path=None, data_dir=None, **_) -> datasets.DatasetDict:
    original = sources.gsm8k_test(gsm8k_path, data_dir)
    rows = [{"index": i, "question": r["question"], "gold": gsm8k_gold(r["answer"])} for i, r in enumerate(original)]
    if variant == "original":
        return _dataset({"test": rows})
    path = sources.lmsys_rephrased("rephrase_gsm8k.jsonl", rephrased_gsm8k_path, data_dir)
    rephrased = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    _check_aligned(path, rephrased, original)
    kept, skipped = [], []
    for row, text in zip(rows, rephrased):
        match = GSM8K_REPHRASED.match(text)
        if not text.strip() or not match:
            skipped.append(row["index"])
            continue
        kept.append({**row, "question": match["question"]})
    _warn_skipped("rephrased_gsm8k", skipped, len(rows))
    return _dataset({"test": kept})


def _check_aligned(path, rephrased: list, original: list) -> None:
    if len(rephrased) != len(original):
        raise InputError(path, f"{len(rephrased)} records, but the original has {len(original)}: "
                                 "a rephrased file must be index-aligned with its original")


# ---------------------------------------------------------------- MMLU

def mmlu_dataset(subject: str, variant: str = "original", mmlu_dir=None, rephrased_mmlu_dir=None, data_dir=None, **_) -> datasets.DatasetDict:
    test = sources.mmlu_rows(subject, "test", mmlu_dir, data_dir)
    dev = sources.mmlu_rows(subject, "dev", mmlu_dir, data_dir)
    rows = [{"index": i, "subject": subject, **r} for i, r in enumerate(test)]
    if variant == "original":
        return _dataset({"test": rows, "dev": [{"index": i, "subject": subject, **r} for i, r in enumerate(dev)]})
    suffix = {"rephrased": "rephrase_english_filtered_question", "zh": "chinese_filtered_question"}[variant]
    name = f"{subject}_test_{suffix}.jsonl"
    path = sources.lmsys_rephrased(name, f"{rephrased_mmlu_dir}/{name}" if rephrased_mmlu_dir else None, data_dir)
    rephrased = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    _check_aligned(path, rephrased, rows)
    kept = [{**row, "question": text} for row, text in zip(rows, rephrased) if text.strip()]
    _warn_skipped(f"{variant}_mmlu_{subject}", [r["index"] for r, t in zip(rows, rephrased) if not t.strip()], len(rows))
    return _dataset({"test": kept, "dev": [{"index": i, "subject": subject, **r} for i, r in enumerate(dev)]})


# ---------------------------------------------------------------- HumanEval

def humaneval_dataset(variant: str = "original", rephrased_humaneval_path=None, data_dir=None, **_) -> datasets.DatasetDict:
    problems = sources.humaneval_problems()
    if variant == "original":
        rows = [{**p, "gold": p["canonical_solution"]} for p in problems]
        return _dataset({"test": rows})
    path = sources.lmsys_rephrased("humaneval_python.jsonl", rephrased_humaneval_path, data_dir)
    rephrased = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    _check_aligned(path, rephrased, problems)
    rows, empty, unparsable = [], [], []
    for problem, text in zip(problems, rephrased):
        doc = rephrased_humaneval_doc(problem, text) if text.strip() else None
        if doc is not None:
            rows.append(doc)
        else:
            (unparsable if text.strip() else empty).append(problem["task_id"])
    _warn_skipped("rephrased_humaneval", empty, len(problems))
    _warn_skipped("rephrased_humaneval", unparsable, len(problems), "are not valid Python")
    return _dataset({"test": rows})


def rephrased_humaneval_doc(problem: dict, text: str) -> dict | None:
    """Split a rephrased 'prompt + solution' into the renamed prompt and its solution; None if unparsable.

    The entry function is the last top-level function with the original's arity (preferring one with a
    docstring); the prompt ends after its docstring. Renamed helpers that the original tests call (poly,
    encode_cyclic, ...) get aliases under their original names, matched by position."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    original_fns = [n for n in ast.parse(problem["prompt"]).body if isinstance(n, ast.FunctionDef)]
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not fns or not original_fns:
        return None
    arity = len(original_fns[-1].args.args)
    same = [n for n in fns if len(n.args.args) == arity]
    entry = ([n for n in same if ast.get_docstring(n)] or same or fns)[-1]
    body_start = entry.body[0].end_lineno if ast.get_docstring(entry) else entry.body[0].lineno - 1
    lines = text.splitlines(keepends=True)
    aliases = [f"{o.name} = {r.name}" for o, r in zip(original_fns[:-1], fns) if o.name != r.name and o.name != problem["entry_point"]]
    test = problem["test"] + ("\n" + "\n".join(aliases) + "\n" if aliases else "")
    return {**problem, "prompt": "".join(lines[:body_start]), "entry_point": entry.name, "test": test,
            "gold": "".join(lines[body_start:])}


def humaneval_pass_at_1(doc: dict, results: list[str]) -> dict:
    """Greedy pass@1 of one completion, executed only in rephraser's sandbox. lm-eval has already refused
    to run this task unless the user passed --confirm_run_unsafe_code (the YAML sets unsafe_code: true)."""
    import os

    from rephraser.sandbox import Sandbox, SandboxConfig, humaneval_program

    config = SandboxConfig(workers=1, isolation=os.environ.get("REPHRASER_SANDBOX_ISOLATION", "namespaces"))
    with Sandbox(config, consent=True) as box:
        result = box.run([humaneval_program(doc, results[0], doc["entry_point"])])[0]
    return {"pass@1": float(result.passed)}
