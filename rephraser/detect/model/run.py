"""score_items: every requested detector on a list of items, with as few model passes as possible, then the
metrics against the items' labels where they have any.

    from rephraser.detect.model import DetectModelConfig, Item, score_items, write_outputs
    results = score_items(cfg, items, log=print)          # outcomes=Outcomes(...) adds the ConStat-style test
    write_outputs(cfg.out, results)                       # results.json, report.md, roc.png, hist_*.png

Passes: one over the items' texts under the model for the whole likelihood family (loss, zlib, mink, mink++ and
the model's half of ref and paired), one over the twins when `paired`, one under the reference model when `ref`;
cdd and ts-guess generate from the model already loaded. A score that cannot be computed (no twin, no scored
token, a point-mass distribution for mink++) is None in its row and counted under `unscored` with the item ids.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

from rephraser.detect.model import detectors as formulas
from rephraser.detect.model.backends import open_scorer
from rephraser.detect.model.baseline import blind_baseline
from rephraser.detect.model.config import DetectModelConfig
from rephraser.detect.model.constat import constat_test
from rephraser.detect.model.items import Item, check_items, has_twin
from rephraser.detect.model.metrics import detector_metrics, distribution
from rephraser.detect.model.shift import paired_shift
from rephraser.log import get_logger

SINGLE_PASS = ("loss", "zlib", "mink", "mink++")


@dataclass
class Outcomes:
    """Per-item benchmark outcomes (e.g. exact match) for the ConStat-style test, aligned by item."""

    target_original: list[float]
    target_rephrased: list[float]
    references: dict[str, tuple[list[float], list[float]]]
    metric: str = "accuracy"


def _likelihood(cfg, scorer, items, scores, extras, log, source):
    wanted = [d for d in cfg.detectors if d in (*SINGLE_PASS, "ref", "paired")]
    if not wanted:
        return None
    t0 = time.perf_counter()
    ids = [it.id for it in items]
    stats = scorer.stats([it.text for it in items], ids, cfg.needs_distribution(), log, source)
    for i, (item, st) in enumerate(zip(items, stats)):
        extras[i]["n_tokens_scored"] = len(st.logprobs)
        for name, value in formulas.likelihood_scores(cfg.detectors, st, item.text, cfg.k).items():
            scores[name][i] = value
    log(f"likelihood pass over {len(items)} texts: {time.perf_counter() - t0:.1f} s")
    if "paired" in cfg.detectors:
        with_twin = [i for i, it in enumerate(items) if has_twin(it)]
        twin_stats = scorer.stats([items[i].twin for i in with_twin], [ids[i] for i in with_twin], False, log, source)
        for i, st in zip(with_twin, twin_stats):
            scores["paired"][i] = formulas.difference(stats[i], st)
    return stats


def _sampling(cfg, scorer, items, scores, extras, log):
    for name, method in (("cdd", scorer.cdd), ("ts-guess", scorer.ts_guess)):
        if name not in cfg.detectors:
            continue
        t0 = time.perf_counter()
        for i, item in enumerate(items):
            scores[name][i], more = method(item)
            extras[i].update(more)
        log(f"{name} over {len(items)} items: {time.perf_counter() - t0:.1f} s")


def _reference(cfg, items, stats, scores, log, source):
    scorer = open_scorer(cfg, cfg.reference, field="reference")
    try:
        ref_stats = scorer.stats([it.text for it in items], [it.id for it in items], False, log, source)
    finally:
        scorer.close()
    for i, (st, rs) in enumerate(zip(stats, ref_stats)):
        scores["ref"][i] = formulas.difference(st, rs)


def _unscored(cfg, items, scores) -> dict:
    out = {}
    for name in cfg.detectors:
        missing = [i for i, v in enumerate(scores[name]) if not math.isfinite(v)]
        if not missing:
            continue
        entry = {"n": len(missing), "ids": [items[i].id for i in missing]}
        if name == "paired":
            no_twin = sum(not has_twin(items[i]) for i in missing)
            entry["reason"] = f"{no_twin} without a twin, {len(missing) - no_twin} with no scored token"
        else:
            entry["reason"] = "no scored token (a one-token text without BOS), or a non-finite value"
        out[name] = entry
    return out


def _finite(value: float):
    return value if math.isfinite(value) else None


def score_items(
    cfg: DetectModelConfig, items: list[Item], log=None, outcomes: Outcomes | None = None, source: str = "items"
) -> dict:
    log = log or get_logger("rephraser.detect.model").info
    check_items(items, cfg.detectors, source)
    started = time.perf_counter()
    scores = {name: [math.nan] * len(items) for name in cfg.detectors}
    extras: list[dict] = [{} for _ in items]
    scorer = open_scorer(cfg, cfg.model)
    try:
        stats = _likelihood(cfg, scorer, items, scores, extras, log, source)
        _sampling(cfg, scorer, items, scores, extras, log)
    finally:
        scorer.close()
    if "ref" in cfg.detectors:
        _reference(cfg, items, stats, scores, log, source)
    labels = [it.label() for it in items]
    labelled = any(lab is not None for lab in labels)
    results = {
        "config": dataclasses.asdict(cfg),
        "n_items": len(items),
        "labelled": labelled,
        "rows": [
            {
                "id": it.id,
                "part": it.part,
                "text": it.text,
                **({"twin": it.twin} if "paired" in cfg.detectors else {}),
                "scores": {name: _finite(scores[name][i]) for name in cfg.detectors},
                "extras": extras[i],
            }
            for i, it in enumerate(items)
        ],
        "unscored": _unscored(cfg, items, scores),
        "distributions": {name: distribution(scores[name]) for name in cfg.detectors},
        "metrics": {},
        "baseline": None,
        "benchmark_tests": {},
    }
    if labelled:
        results["metrics"] = {
            name: detector_metrics(scores[name], labels, cfg.bootstrap, cfg.seed) for name in cfg.detectors
        }
        if cfg.baseline:
            results["baseline"] = blind_baseline([it.text for it in items], labels, cfg.seed, cfg.bootstrap)
    if "paired" in cfg.detectors:
        shift = paired_shift(scores["paired"], cfg.bootstrap, cfg.seed)
        if shift is not None:
            results["benchmark_tests"]["paired_shift"] = shift
    if outcomes is not None:
        test = constat_test(
            outcomes.target_original, outcomes.target_rephrased, outcomes.references, cfg.bootstrap, cfg.seed
        )
        results["benchmark_tests"]["constat"] = {"metric": outcomes.metric, **test}
    results["seconds"] = round(time.perf_counter() - started, 2)
    return results
