"""The experiment's numbers, read from lm-eval's own result and sample files.

    rows, items = read_model(eval_dir, model, condition, task_names)   # tidy rows, per-item outcomes
    effects = contamination_effects(rows, items, cfg)

Each value is lm-eval's aggregate for a (benchmark, variant, part) task, as its results_*.json has it; n and the
per-item outcomes come from its samples_*.jsonl, and the mean of those outcomes must equal the value (else the
run stops: a number that cannot be traced to its samples is not reported). Intervals: Wilson for every score
(each is a share of items), a paired bootstrap for the contamination effect.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.data.sources import MMLU_REPHRASED_SUBJECTS
from rephraser.errors import RephraserError
from rephraser.experiment.stats import effect, effect_interval, wilson

METRICS = {
    "gsm8k": [("exact_match", "strict-match"), ("exact_match", "flexible-extract")],
    "mmlu": [("acc", "none")],
    "humaneval": [("pass@1", "none")],
}


def item_id(benchmark: str, doc: dict) -> str:
    if benchmark == "gsm8k":
        return f"gsm8k/{doc['index']}"
    if benchmark == "humaneval":
        return doc["task_id"]
    return f"{doc['subject']}/{doc['index']}"


def _samples(folder: Path, task: str) -> list[dict]:
    files = sorted(folder.rglob(f"samples_{task}_*.jsonl"))
    if not files:
        raise RephraserError(f"no lm-eval samples file for {task} under {folder}")
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def read_model(folder: Path, model: str, condition: str, names: dict) -> tuple[list[dict], list[dict]]:
    files = sorted(folder.rglob("results_*.json"))
    if not files:
        raise RephraserError(f"no lm-eval results file under {folder}")
    results = json.loads(files[-1].read_text())["results"]
    rows, items = [], []
    for (benchmark, variant, part), task in names.items():
        subtasks = [f"{task}_{s}" for s in MMLU_REPHRASED_SUBJECTS] if benchmark == "mmlu" else [task]
        for metric, filter_name in METRICS[benchmark]:
            outcomes = [
                (item_id(benchmark, s["doc"]), float(s[metric]))
                for sub in subtasks
                for s in _samples(folder, sub)
                if s.get("filter", "none") == filter_name
            ]
            key = f"{metric},{filter_name}"
            value = results[task][key]
            if not outcomes:  # nothing to check the reported number against: no number
                raise RephraserError(
                    f"{model} {task} {key}: lm-eval's samples hold no per-item {metric} ({filter_name})"
                )
            mean = sum(v for _, v in outcomes) / len(outcomes)
            if abs(mean - value) > 1e-9:
                raise RephraserError(f"{model} {task} {key}: lm-eval reports {value}, its samples average {mean}")
            name = metric if filter_name == "none" else f"{metric} ({filter_name})"
            low, high = wilson(sum(v for _, v in outcomes), len(outcomes))
            rows.append(
                {
                    "model": model,
                    "condition": condition,
                    "benchmark": benchmark,
                    "part": part,
                    "variant": variant,
                    "metric": name,
                    "value": value,
                    "n": len(outcomes),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
            items += [
                {
                    "model": model,
                    "benchmark": benchmark,
                    "part": part,
                    "variant": variant,
                    "metric": name,
                    "id": i,
                    "value": v,
                }
                for i, v in outcomes
            ]
    return rows, items


def contamination_effects(
    rows: list[dict], items: list[dict], conditions: list[str], resamples: int, seed: int
) -> list[dict]:
    """Per trained condition, benchmark, variant and metric: (lift on contaminated) - (lift on clean)."""
    outcome = {(i["model"], i["benchmark"], i["variant"], i["metric"], i["part"], i["id"]): i["value"] for i in items}
    out = []
    keys = sorted({(r["benchmark"], r["variant"], r["metric"]) for r in rows})
    for condition in conditions:
        for benchmark, variant, metric in keys:
            paired = {}
            for part in ("contaminated", "clean"):
                ids = sorted(
                    i
                    for (m, b, v, mt, p, i) in outcome
                    if (m, b, v, mt, p) == ("base", benchmark, variant, metric, part)
                )
                paired[part] = (
                    [outcome["base", benchmark, variant, metric, part, i] for i in ids],
                    [outcome[condition, benchmark, variant, metric, part, i] for i in ids],
                )
            (cb, ct), (lb, lt) = paired["contaminated"], paired["clean"]
            low, high = effect_interval(cb, ct, lb, lt, resamples, seed)
            out.append(
                {
                    "condition": condition,
                    "benchmark": benchmark,
                    "variant": variant,
                    "metric": metric,
                    "lift_contaminated": _lift(cb, ct),
                    "lift_clean": _lift(lb, lt),
                    "effect": effect(cb, ct, lb, lt),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return out


def _lift(base: list[float], trained: list[float]) -> float:
    return (sum(trained) - sum(base)) / len(base) if base else float("nan")
