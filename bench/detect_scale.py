"""`rephraser detect` at scale: each stage against today's code on the same rows, on one core.

    python bench/detect_scale.py --stage ngram [--rows 200000] [--sizes 200000 500000 1000000 2000000]
                                 [--batch 4096] [--data-dir ../shared/data] [--cpu 0]

Stages (more are added here as they come: a function taking the parsed arguments, named in STAGES):
  ngram  the hashed n-gram stage (rephraser.detect.ngrams: HashedNgrams.match_batch + NgramTally, 10- and
         13-grams at once) vs today's per-row matcher (overlap.NgramIndex.matches per row and n, counts and
         first rows kept as scan.first_pass keeps them), against GSM-8K test (1319 items) and HumanEval (164).
         1. speed: --rows rows streamed in --batch batches, both matchers timed batch by batch in turn (so a
            busy machine slows both alike); rows/s by CPU time and by wall time, the ratio (target >= 10x);
            the two results (counts and first rows per test item and n) are checked equal first. Then the
            same on --rows/4 rows without any test item and on --rows/4 verbatim copies of the test items,
            to show where the time goes (a copied row has ~40 matching windows to verify and count).
         2. memory: the hashed stage alone over each of --sizes rows, streamed: rows/s and peak memory (RSS
            high-water mark, reset before each size; tracemalloc's peak of what Python and numpy allocate);
            target: flat as rows grow.
Rows: GSM-8K train questions, the LMSYS rephrases (GSM-8K, HumanEval Python) and verbatim copies of the test
items (GSM-8K test questions, HumanEval prompt + solution; 14 % of the rows), mixed (seeded shuffle) and
cycled; every pass after the first perturbs each row (two adjacent words swapped, a word's case or punctuation
changed) so rows do not repeat exactly. Data is read in place from the mirror. One core: the process pins
itself (--cpu) and sets the thread variables before numpy loads. The load average is printed: on a shared
machine CPU-time rates are the steadier figure. About 1 min of CPU for the speed part, 4 for the memory part.
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
    from rephraser.detect.scan import MATCHES_KEPT
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


STAGES = {"ngram": ngram_stage}


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
    args = parser.parse_args()
    os.environ.setdefault("REPHRASER_DATA_DIR", args.data_dir)
    os.environ.setdefault("REPHRASER_LOG_LEVEL", "WARNING")
    os.sched_setaffinity(0, {args.cpu})
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
