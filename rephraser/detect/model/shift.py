"""The paired shift, a benchmark-level test that needs no labels: does the model prefer the items as written over
their rephrased twins, across the benchmark?

    s = paired_shift(scores["paired"], resamples=10000, seed=0)
    s["mean"], s["ci_low"], s["ci_high"], s["p_value"], s["n_items"], s["n_unscored"]

`scores` are the per-item `paired` scores (log-likelihood of the text minus its twin's; nan where an item has no
twin or no scored token: left out, and counted). mean: their mean, with a 95 % percentile bootstrap interval of the
mean (scipy.stats.bootstrap); p_value: scipy's two-sided Wilcoxon signed-rank test of "the shift is centred on 0".
Read it with care: even an uncontaminated model usually prefers one form (the rephrases may be longer, rarer, or
translated), so a shift alone is not contamination; compare it with a model known to be clean on the same items
(an experiment's base model), as the ConStat-style test compares accuracy gaps.
"""

from __future__ import annotations

import numpy as np


def paired_shift(scores, resamples: int = 10000, seed: int = 0) -> dict | None:
    import scipy.stats

    values = np.asarray(scores, float)
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None
    boot = scipy.stats.bootstrap(
        (finite,), np.mean, n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed)
    )
    nonzero = finite[finite != 0]
    p = float(scipy.stats.wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0
    return {"n_items": int(len(finite)), "n_unscored": int(len(values) - len(finite)), "mean": float(finite.mean()),
            "ci_low": float(boot.confidence_interval.low), "ci_high": float(boot.confidence_interval.high),
            "p_value": p, "resamples": resamples}  # fmt: skip
