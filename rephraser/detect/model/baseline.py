"""The blind baseline: how well the item text alone, without any model, predicts the contamination label.

    b = blind_baseline(texts, labels, seed=0, resamples=2000)   # {"auroc", "ci_low", ..., "folds", "note"}

A bag-of-words classifier (scikit-learn: TF-IDF of words and word pairs -> logistic regression) is cross-validated
over the same labels (StratifiedKFold, shuffled with the seed); each item's probability comes from the fold that
did not train on it, and the pooled probabilities are scored like a detector (rephraser.detect.model.metrics).
The vectoriser is fit inside each fold (a Pipeline), so no fold sees the held-out items' vocabulary.
Near 0.5 shows that the seeded split carries no wording artefact a detector could exploit; near 1.0 means the
parts differ in wording and a detector's AUROC says little about contamination. Cross-validation under random
labels runs a little below 0.5 (0.475 +- 0.05 measured over 12 random splits of 300 GSM-8K questions), and the
interval resamples the pooled predictions, not the folds: it is narrower than the full uncertainty. Folds: 5, or
the size of the smaller part when it has fewer items; with fewer than 2 items in a part it is undefined (the note
says so).
"""

from __future__ import annotations

import numpy as np

from rephraser.detect.model.metrics import detector_metrics

FOLDS = 5


def blind_baseline(texts: list[str], labels, seed: int = 0, resamples: int = 2000) -> dict | None:
    """None when no item is labelled; else the metrics of the cross-validated probabilities plus `folds`."""
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    if not keep:
        return None
    y = np.array([labels[i] for i in keep], int)
    smaller = int(min((y == 1).sum(), (y == 0).sum()))
    if smaller < 2:
        out = detector_metrics([np.nan] * len(keep), list(y), resamples, seed)
        out.update(folds=None, note="undefined: cross-validation needs at least two items in each part")
        return out
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    folds = min(FOLDS, smaller)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, [texts[i] for i in keep], y, cv=cv, method="predict_proba")[:, 1]
    out = detector_metrics(list(proba), list(y), resamples, seed)
    out["folds"] = folds
    return out
