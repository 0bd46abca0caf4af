"""A ConStat-style benchmark-level test (after Dekoninck et al. 2024, "ConStat: Performance-Based Contamination
Detection"): is the model's accuracy gap between the original and the rephrased benchmark larger than the gap of
reference models that were not contaminated?

    t = constat_test(target_original, target_rephrased, {"base": (ref_original, ref_rephrased)}, resamples=10000)
    t["gap"], t["reference_gap"], t["difference"], t["p_value"]

Inputs are per-item outcomes (1/0, or scores in [0, 1]), aligned: position i of every array is the same item, on
its original and on its rephrased form (items without a rephrase must be left out by the caller, and counted).
- gap = mean(target original) - mean(target rephrased); a contaminated model does better on the form it saw;
- reference_gap = the mean of the reference models' gaps: how much harder the rephrased form is by itself;
- difference = gap - reference_gap;
- ci_low, ci_high: its 95 % percentile bootstrap interval; p_value: one-sided bootstrap p-value of H0
  "difference <= 0". Items are resampled with replacement, the same items for every model (the outcomes are
  paired by item: the difference is the mean of per-item differences, so scipy.stats.bootstrap resamples those),
  and p = (1 + #{resamples with difference <= 0}) / (1 + resamples), from scipy's bootstrap distribution: the
  add-one form that never reports 0 from a finite number of resamples.
Unlike ConStat, reference performance is not mapped through a fitted curve: with one or a few reference models of
similar strength, their mean gap is the comparison. Reference models are fixed, not resampled.
"""

from __future__ import annotations

import numpy as np


def _array(name: str, values, n: int | None) -> np.ndarray:
    a = np.asarray(values, float)
    if a.ndim != 1 or (n is not None and len(a) != n):
        raise ValueError(f"constat: {name} has {a.shape} outcomes, expected {n} aligned items")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"constat: {name} has missing (nan) outcomes; leave those items out and count them")
    return a


def constat_test(target_original, target_rephrased, references: dict, resamples: int = 10000, seed: int = 0) -> dict:
    if not references:
        raise ValueError("constat: at least one reference model is needed")
    t_o = _array("target original", target_original, None)
    n = len(t_o)
    if n < 2:
        raise ValueError("constat: at least two items are needed")
    t_gap = t_o - _array("target rephrased", target_rephrased, n)
    ref_gaps = np.stack(
        [_array(f"{name} original", o, n) - _array(f"{name} rephrased", r, n) for name, (o, r) in references.items()]
    ).mean(0)
    per_item = t_gap - ref_gaps  # difference is the mean of these: resampling items resamples them
    import scipy.stats

    boot = scipy.stats.bootstrap(
        (per_item,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
    )
    draws = boot.bootstrap_distribution
    return {
        "n_items": n,
        "gap": float(t_gap.mean()),
        "reference_gap": float(ref_gaps.mean()),
        "reference_gaps": {
            name: float((np.asarray(o, float) - np.asarray(r, float)).mean()) for name, (o, r) in references.items()
        },
        "difference": float(per_item.mean()),
        "ci_low": float(boot.confidence_interval.low),
        "ci_high": float(boot.confidence_interval.high),
        "p_value": float((1 + (draws <= 0).sum()) / (1 + resamples)),
        "resamples": resamples,
    }
