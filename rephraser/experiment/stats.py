"""Honest uncertainty: Wilson intervals for a share of items, bootstrap intervals for the contamination effect.

    wilson(successes=6, n=8)                     -> (0.40, 0.93)   95 % Wilson score interval
    effect_interval(cont_base, cont_trained, clean_base, clean_trained, resamples=2000, seed=0)

The effect is (trained - base on the contaminated items) - (trained - base on the clean items). Its interval
resamples the contaminated items and the clean items independently, with replacement, keeping each item's
base and trained outcomes together (they are paired: the same item before and after training).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

NAN = (float("nan"), float("nan"))


def wilson(successes: float, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of `successes` out of `n` 0/1 outcomes (scipy's)."""
    if n == 0:
        return NAN
    if not float(successes).is_integer():
        raise ValueError(f"wilson: {successes} successes is not a count of 0/1 outcomes")
    ci = scipy.stats.binomtest(int(successes), n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def effect(cont_base, cont_trained, clean_base, clean_trained) -> float:
    return _lift(cont_base, cont_trained) - _lift(clean_base, clean_trained)


def _lift(base, trained) -> float:
    return float(np.mean(trained) - np.mean(base)) if len(base) else float("nan")


def effect_interval(
    cont_base, cont_trained, clean_base, clean_trained, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile bootstrap of `effect`: each part resampled on its own (scipy's unpaired bootstrap of the
    two samples of per-item lifts); undefined (nan) with fewer than two items in a part."""
    cont = np.asarray(cont_trained, float) - np.asarray(cont_base, float)
    clean = np.asarray(clean_trained, float) - np.asarray(clean_base, float)
    if len(cont) < 2 or len(clean) < 2:
        return NAN
    result = scipy.stats.bootstrap(
        (cont, clean),
        lambda a, b, axis: a.mean(axis) - b.mean(axis),
        vectorized=True,
        paired=False,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))
