"""The experiment's numbers, read from lm-eval's own result and sample files.

    rows, items = read_model(eval_dir, model, condition, benches, names)   # tidy rows, per-item outcomes
    effects = contamination_effects(rows, items, conditions, resamples, seed)

Each value is lm-eval's aggregate for a (benchmark, variant, part) task, as its results_*.json has it; n and the
per-item outcomes come from its samples_*.jsonl. The number of per-item outcomes must equal lm-eval's own
`n-samples` for every task, and their mean must equal the value (else the run stops: a number that cannot be traced
to all of its samples is not reported; a truncated samples file can still match the mean). Which metrics are read
is the benchmark's (`metrics`). Intervals: Wilson for every score (each is a share of items), a bootstrap for the
contamination effect.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.benchmarks.base import Benchmark
from rephraser.errors import RephraserError
from rephraser.experiment.stats import effect, effect_interval, wilson
from rephraser.experiment.tasks import subtask_names


def _samples(folder: Path, task: str) -> list[dict]:
    files = sorted(folder.rglob(f"samples_{task}_*.jsonl"))
    if not files:
        raise RephraserError(f"no lm-eval samples file for {task} under {folder}")
    rows = []
    for k, line in enumerate(files[-1].read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise RephraserError(f"{files[-1]}:{k}: not a JSON line (an interrupted evaluation?)") from None
    return rows


def _n_samples(result: dict, task: str, folder: Path) -> int:
    n = result.get("n-samples", {}).get(task, {})
    count = n.get("effective", n.get("original")) if isinstance(n, dict) else None
    if not isinstance(count, int):
        raise RephraserError(f"lm-eval's results under {folder} give no n-samples for {task}")
    return count


def read_model(folder: Path, model: str, condition: str, benches: dict, names: dict) -> tuple[list[dict], list[dict]]:
    files = sorted(folder.rglob("results_*.json"))
    if not files:
        raise RephraserError(f"no lm-eval results file under {folder}")
    result = json.loads(files[-1].read_text())
    rows, items = [], []
    for (benchmark, variant, part), task in names.items():
        bench = benches[benchmark]
        subtasks = subtask_names(bench, task)
        samples = {sub: _samples(folder, sub) for sub in subtasks}
        for metric, filter_name in bench.metrics:
            outcomes = []
            for sub in subtasks:
                mine = [s for s in samples[sub] if s.get("filter", "none") == filter_name]
                if len(mine) != _n_samples(result, sub, folder):
                    raise RephraserError(
                        f"{model} {sub}: {len(mine)} per-item {metric} ({filter_name}) outcomes in lm-eval's samples "
                        f"file, but lm-eval scored {_n_samples(result, sub, folder)} items: the file is incomplete"
                    )
                outcomes += [(s["doc"]["id"], float(s[metric])) for s in mine]
            rows.append(
                _row(result["results"], model, condition, benchmark, variant, part, task, metric, filter_name, outcomes)
            )
            name = rows[-1]["metric"]
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


def _row(results, model, condition, benchmark, variant, part, task, metric, filter_name, outcomes) -> dict:
    key = f"{metric},{filter_name}"
    value = results[task][key]
    if not outcomes:  # nothing to check the reported number against: no number
        raise RephraserError(f"{model} {task} {key}: lm-eval's samples hold no per-item {metric} ({filter_name})")
    mean = sum(v for _, v in outcomes) / len(outcomes)
    if abs(mean - value) > 1e-9:
        raise RephraserError(f"{model} {task} {key}: lm-eval reports {value}, its samples average {mean}")
    name = Benchmark.metric_label(metric, filter_name)
    low, high = wilson(sum(v for _, v in outcomes), len(outcomes))
    return {"model": model, "condition": condition, "benchmark": benchmark, "part": part, "variant": variant,
            "metric": name, "value": value, "n": len(outcomes), "ci_low": low, "ci_high": high}  # fmt: skip


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
            out.append({"condition": condition, "benchmark": benchmark, "variant": variant, "metric": metric,
                        "lift_contaminated": _lift(cb, ct), "lift_clean": _lift(lb, lt),
                        "effect": effect(cb, ct, lb, lt), "ci_low": low, "ci_high": high})  # fmt: skip
    return out


def _lift(base: list[float], trained: list[float]) -> float:
    return (sum(trained) - sum(base)) / len(base) if base else float("nan")
