"""Shared logic of the task folders: datasets for lm-eval's `custom_dataset`, and HumanEval scoring.

The YAMLs name these with the dotted `!function rephraser.tasks.common.<fn>` form. lm-eval calls a
custom_dataset with the task's metadata (and `--metadata`) plus dataset_kwargs as keyword arguments, so
each function takes what it needs and ignores the rest. Rephrased records are index-aligned with their
originals: the gold answer always comes from the original at the same index (every doc keeps that
`index`, so `--log_samples` rows trace back to the source line), and records that cannot be used are
skipped and counted in the log with their indices, never shifted. Few-shot examples never come from the
test split: GSM-8K draws them from train (worked answers, as lm-eval's gsm8k), MMLU from dev, and
HumanEval (no other split) refuses few-shot.
"""

from __future__ import annotations

import hashlib
import json
import re

import datasets
from lm_eval.api.samplers import ContextSampler
from lm_eval.api.task import ConfigurableTask

from rephraser.data import sources
from rephraser.data.humaneval import rephrased_doc
from rephraser.data.leaks import leak_reason
from rephraser.errors import InputError, RephraserError
from rephraser.log import get_logger

log = get_logger("rephraser.tasks")


class RephraserTask(ConfigurableTask):
    """lm-eval's ConfigurableTask, with the data's identity in the `--cache_requests` key: lm-eval keys cached
    requests by task name and few-shot settings only, so a rephrased file swapped through `--metadata` would
    otherwise be served the previous file's requests."""

    def __init__(self, config: dict | None = None, **kwargs):
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def build_all_requests(self, *, tokenizer_name: str = "", **kwargs):
        if kwargs.get("cache_requests"):
            tokenizer_name = f"{tokenizer_name}-data{self.data_fingerprint()}"
        return super().build_all_requests(tokenizer_name=tokenizer_name, **kwargs)

    def data_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for split in sorted(self.dataset):
            for doc in self.dataset[split]:
                digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]


class RefuseFewShot(ContextSampler):
    """For tasks with no split but test: few-shot examples would be test items (lm-eval's fallback)."""

    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if n > 0:
            raise RephraserError(
                "HumanEval has only a test split: few-shot examples would be other test problems. "
                "Run the HumanEval tasks 0-shot (drop --num_fewshot)"
            )
        return []


def no_fewshot_docs() -> list:
    return []


def _dataset(splits: dict[str, list[dict]]) -> datasets.DatasetDict:
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def _log_skipped(task: str, skipped: list, total: int, why: str) -> None:
    if skipped:
        shown = ", ".join(map(str, skipped[:50])) + (" ..." if len(skipped) > 50 else "")
        log.warning("%s: %d of %d records skipped: %s (indices: %s)", task, len(skipped), total, why, shown)


def _check_aligned(path, rephrased: list, original: list) -> None:
    if len(rephrased) != len(original):
        raise InputError(
            path,
            f"{len(rephrased)} records, but the original has {len(original)}: "
            "a rephrased file must be index-aligned with its original",
        )


# ---------------------------------------------------------------- GSM-8K

GSM8K_REPHRASED = re.compile(r"^Question:\s*(?P<question>.*?)\s*\nAnswer:", re.S)
GSM8K_FINAL = re.compile(r"####\s*(?P<number>-?[\d,.]+)\s*$")


def gsm8k_gold(answer: str) -> str:
    """The number after '####' of a GSM-8K worked answer, commas removed."""
    return answer.split("####")[-1].strip().replace(",", "")


def _gsm8k_docs(rows: list[dict]) -> list[dict]:
    return [
        {"index": i, "question": r["question"], "answer": r["answer"], "gold": gsm8k_gold(r["answer"])}
        for i, r in enumerate(rows)
    ]


def gsm8k_dataset(
    variant: str = "original", gsm8k_path=None, gsm8k_train_path=None, rephrased_gsm8k_path=None, data_dir=None, **_
) -> datasets.DatasetDict:
    rows = _gsm8k_docs(sources.gsm8k_split("test", gsm8k_path, data_dir))
    train = _gsm8k_docs(sources.gsm8k_split("train", gsm8k_train_path, data_dir))  # the few-shot pool
    if variant == "original":
        return _dataset({"test": rows, "train": train})
    path = sources.lmsys_rephrased(
        "rephrase_gsm8k.jsonl", rephrased_gsm8k_path, data_dir, "metadata rephrased_gsm8k_path"
    )
    rephrased = sources.read_rephrased_texts(path)
    _check_aligned(path, rephrased, rows)
    kept, empty = [], []
    for row, text in zip(rows, rephrased):
        _check_gsm8k_answer(path, row, text)
        match = GSM8K_REPHRASED.match(text)
        if not match or not match["question"].strip():
            empty.append(row["index"])
            continue
        kept.append({**row, "question": match["question"]})
    _log_skipped("rephrased_gsm8k", empty, len(rows), "empty placeholders or no question")
    return _dataset({"test": kept, "train": train})


def _check_gsm8k_answer(path, row: dict, text: str) -> None:
    """The LMSYS lines end in '#### N': it must be the original's gold at the same index, or the file is
    misaligned (every score would be against the wrong gold)."""
    final = GSM8K_FINAL.search(text)
    if final and final["number"].replace(",", "").rstrip(".") != row["gold"]:
        raise InputError(
            path,
            f"ends in '#### {final['number']}' but the GSM-8K test item at index {row['index']} has "
            f"gold {row['gold']}: the file is not index-aligned with the test set",
            row["index"] + 1,
            "text",
        )


# ---------------------------------------------------------------- MMLU

MMLU_SUFFIX = {"rephrased": "rephrase_english_filtered_question", "zh": "chinese_filtered_question"}


def _with_options(row: dict) -> dict:
    """A dev example in the Chinese template's shape: options inside the question text, as in the LMSYS file."""
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", row["choices"]))
    return {**row, "question": row["question"].strip() + options}


def mmlu_dataset(
    subject: str,
    variant: str = "original",
    mmlu_dir=None,
    rephrased_mmlu_dir=None,
    data_dir=None,
    include_leaking_items: bool = False,
    **_,
) -> datasets.DatasetDict:
    test = sources.mmlu_rows(subject, "test", mmlu_dir, data_dir)
    dev = [
        {"index": i, "subject": subject, **r}
        for i, r in enumerate(sources.mmlu_rows(subject, "dev", mmlu_dir, data_dir))
    ]
    rows = [{"index": i, "subject": subject, **r} for i, r in enumerate(test)]
    if variant == "original":
        return _dataset({"test": rows, "dev": dev})
    name = f"{subject}_test_{MMLU_SUFFIX[variant]}.jsonl"
    explicit = f"{rephrased_mmlu_dir}/{name}" if rephrased_mmlu_dir else None
    path = sources.lmsys_rephrased(name, explicit, data_dir, "metadata rephrased_mmlu_dir")
    rephrased = sources.read_rephrased_texts(path)
    _check_aligned(path, rephrased, rows)
    task = f"{'rephrased_mmlu' if variant == 'rephrased' else 'rephrased_mmlu_zh'}_{subject}"
    kept, empty, leaking = [], [], []
    for row, text in zip(rows, rephrased):
        if not text.strip():
            empty.append(row["index"])
        elif (
            variant == "rephrased"
            and not include_leaking_items
            and leak_reason(text, row["choices"], row["answer"], row["question"])
        ):
            leaking.append(row["index"])
        else:
            kept.append({**row, "question": text, "original_question": row["question"]})
    _log_skipped(task, empty, len(rows), "empty placeholders")
    _log_skipped(
        task,
        leaking,
        len(rows),
        "the rephrased question gives its answer away (rephraser.data.leaks; "
        "--metadata '{\"include_leaking_items\": true}' keeps them)",
    )
    # No Chinese dev set exists: the Chinese task's few-shot examples are the English dev questions, with their
    # options, in the Chinese template (question + options + "答案：" + letter), the same shape as its test items.
    return _dataset({"test": kept, "dev": [_with_options(r) for r in dev] if variant == "zh" else dev})


# ---------------------------------------------------------------- HumanEval


def humaneval_dataset(
    variant: str = "original", rephrased_humaneval_path=None, data_dir=None, **_
) -> datasets.DatasetDict:
    problems = [{**p, "index": i} for i, p in enumerate(sources.humaneval_problems())]
    if variant == "original":
        return _dataset(
            {
                "test": [
                    {**p, "gold": p["canonical_solution"], "original_entry_point": p["entry_point"]} for p in problems
                ]
            }
        )
    path = sources.lmsys_rephrased(
        "humaneval_python.jsonl", rephrased_humaneval_path, data_dir, "metadata rephrased_humaneval_path"
    )
    rephrased = sources.read_rephrased_texts(path)
    _check_aligned(path, rephrased, problems)
    rows, empty, unparsable = [], [], []
    for problem, text in zip(problems, rephrased):
        doc = rephrased_doc(problem, text) if text.strip() else None
        if doc is not None:
            rows.append(doc)
        else:
            (unparsable if text.strip() else empty).append(problem["task_id"])
    _log_skipped("rephrased_humaneval", empty, len(problems), "empty placeholders")
    _log_skipped("rephrased_humaneval", unparsable, len(problems), "not valid Python")
    return _dataset({"test": rows})


def humaneval_pass_at_1(doc: dict, results: list[str]) -> dict:
    """Greedy pass@1 of one completion, executed only in rephraser's sandbox. lm-eval has already refused
    to run this task unless the user passed --confirm_run_unsafe_code (the YAML sets unsafe_code: true).
    A sandbox failure ("error": it could not run the program) stops the evaluation: it is not a failed sample."""
    import os

    from rephraser.sandbox import Sandbox, SandboxConfig, humaneval_program, raise_on_errors

    config = SandboxConfig(workers=1, isolation=os.environ.get("REPHRASER_SANDBOX_ISOLATION", "namespaces"))
    with Sandbox(config, consent=True) as box:
        results = box.run([humaneval_program(doc, results[0], doc["entry_point"])])
    raise_on_errors(results)
    return {"pass@1": float(results[0].passed)}
