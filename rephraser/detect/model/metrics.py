"""How well a detector's scores separate contaminated from clean items (scikit-learn and scipy).

    m = detector_metrics(scores, labels, resamples=2000, seed=0)
    m["auroc"], m["ci_low"], m["ci_high"], m["tpr_at_1fpr"], m["tpr_at_5fpr"], m["n_contaminated"], m["n_clean"]

labels: 1 contaminated, 0 clean, None unknown (left out, counted as n_unlabelled). A nan score (an item the
detector could not score) is left out and counted as n_missing. Undefined numbers are None with a `note`, never
a made-up 0.5:
- AUROC (sklearn's roc_auc_score: ties count one half) needs both classes;
- its 95 % interval: a stratified percentile bootstrap (scipy.stats.bootstrap with the two parts as independent
  samples, so each part is resampled on its own and keeps its size; the AUROC of a resample from the ranks, equal
  to roc_auc_score). Percentile rather than BCa: BCa is undefined when every resample gives the same AUROC, which
  is the common case of a perfectly separated (1.0) detector. It needs two items in each part;
- TPR at x FPR: the largest TPR of sklearn's roc_curve over thresholds whose FPR <= x, with every threshold kept
  (drop_intermediate=False: the dropped collinear points of a tie run can be the only ones with FPR <= x). With
  n clean items the FPR moves in steps of 1/n: with 8 clean items, FPR <= 1 % and <= 5 % both mean no clean item
  above the threshold (reported as fpr_step).
"""

from __future__ import annotations

import numpy as np

FPRS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}


def auroc_from_samples(pos, neg, axis=-1):
    """AUROC of positives over negatives along `axis`, from midranks (the Mann-Whitney U / (n_pos n_neg)), for
    scipy's vectorised bootstrap; equals sklearn's roc_auc_score (ties count one half)."""
    import scipy.stats

    pos, neg = np.moveaxis(np.asarray(pos), axis, -1), np.moveaxis(np.asarray(neg), axis, -1)
    both = np.concatenate([pos, np.broadcast_to(neg, pos.shape[:-1] + neg.shape[-1:])], axis=-1)
    ranks = scipy.stats.rankdata(both, axis=-1)[..., : pos.shape[-1]]
    n_pos, n_neg = pos.shape[-1], neg.shape[-1]
    return (ranks.sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_interval(pos, neg, resamples: int, seed: int) -> tuple[float, float]:
    import scipy.stats

    result = scipy.stats.bootstrap(
        (np.asarray(pos, float), np.asarray(neg, float)),
        auroc_from_samples,
        vectorized=True,
        paired=False,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def tpr_at_fpr(labels, scores, fpr_max: float) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= fpr_max + 1e-12].max())


def _split(scores, labels):
    scores = np.asarray([np.nan if s is None else s for s in scores], float)
    known = np.array([lab is not None for lab in labels], bool)
    y = np.array([lab if lab is not None else -1 for lab in labels], int)
    finite = np.isfinite(scores)
    return scores, y, known, finite


def detector_metrics(scores, labels, resamples: int = 2000, seed: int = 0) -> dict:
    scores, y, known, finite = _split(scores, labels)
    use = known & finite
    pos, neg = scores[use & (y == 1)], scores[use & (y == 0)]
    out = {
        "auroc": None,
        "ci_low": None,
        "ci_high": None,
        "tpr_at_1fpr": None,
        "tpr_at_5fpr": None,
        "n_contaminated": int(len(pos)),
        "n_clean": int(len(neg)),
        "n_missing": int((known & ~finite).sum()),
        "n_unlabelled": int((~known).sum()),
        "fpr_step": 1 / len(neg) if len(neg) else None,
        "note": None,
    }
    if not len(pos) or not len(neg):
        missing = "contaminated" if not len(pos) else "clean"
        out["note"] = f"undefined: no scored {missing} item (AUROC and TPR need both parts)"
        return out
    from sklearn.metrics import roc_auc_score

    y_use, s_use = y[use], scores[use]
    out["auroc"] = float(roc_auc_score(y_use, s_use))
    for key, fpr in FPRS.items():
        out[key] = tpr_at_fpr(y_use, s_use, fpr)
    if len(pos) < 2 or len(neg) < 2:
        out["note"] = "no interval: the bootstrap needs at least two scored items in each part"
    else:
        out["ci_low"], out["ci_high"] = bootstrap_interval(pos, neg, resamples, seed)
    return out


def distribution(scores) -> dict:
    """Summary of one detector's scores (nan left out and counted), for runs without labels."""
    values = np.asarray([np.nan if s is None else s for s in scores], float)
    finite = values[np.isfinite(values)]
    out = {"n": int(len(finite)), "n_missing": int(len(values) - len(finite))}
    if not len(finite):
        return out
    q = np.percentile(finite, [0, 25, 50, 75, 100])
    out.update(
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if len(finite) > 1 else None,
        min=float(q[0]),
        q25=float(q[1]),
        median=float(q[2]),
        q75=float(q[3]),
        max=float(q[4]),
    )
    return out
