"""Honest uncertainty: Wilson intervals for a share of items, bootstrap intervals for the contamination effect.

    wilson(successes=6, n=8)                     -> (0.40, 0.93)   95 % Wilson score interval
    effect_interval(cont_base, cont_trained, clean_base, clean_trained, resamples=2000, seed=0)

The effect is (trained - base on the contaminated items) - (trained - base on the clean items). Its interval
resamples the contaminated items and the clean items independently, with replacement, keeping each item's
base and trained outcomes together (they are paired: the same item before and after training).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    low = 0.0 if successes <= 0 else max(0.0, (centre - half) / denominator)  # exact bounds at 0 and n (no rounding dust)
    high = 1.0 if successes >= n else min(1.0, (centre + half) / denominator)
    return (low, high)


def effect(cont_base, cont_trained, clean_base, clean_trained) -> float:
    lift = lambda base, trained: float(np.mean(trained) - np.mean(base)) if len(base) else float("nan")
    return lift(cont_base, cont_trained) - lift(clean_base, clean_trained)


def effect_interval(cont_base, cont_trained, clean_base, clean_trained, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    cont = np.asarray(cont_trained, float) - np.asarray(cont_base, float)
    clean = np.asarray(clean_trained, float) - np.asarray(clean_base, float)
    if not len(cont) or not len(clean):
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    a = cont[rng.integers(0, len(cont), size=(resamples, len(cont)))].mean(axis=1)
    b = clean[rng.integers(0, len(clean), size=(resamples, len(clean)))].mean(axis=1)
    low, high = np.percentile(a - b, [2.5, 97.5])
    return (float(low), float(high))
