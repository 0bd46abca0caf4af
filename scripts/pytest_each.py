"""Run each selected test in a fresh interpreter: `python scripts/pytest_each.py [--jobs N] -m vllm [pytest args]`.

Why: vLLM keeps process-wide state (its parallel groups, its engine-core processes). After one test's engine is torn
down, a later test in the same process that builds another engine or runs HF generation beside it fails with
"pipeline model parallel group is not initialized", or waits forever on a dead engine core. Each test passes in a
process of its own, so each gets one. A test that runs past TIMEOUT_S counts as failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT_S = 900


def run_one(test: str) -> tuple[str, bool, str]:
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                              capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
        return test, done.returncode in (0, 5), done.stdout[-4000:] + done.stderr[-2000:]
    except subprocess.TimeoutExpired:
        return test, False, f"timed out after {TIMEOUT_S} s"


def main(argv: list[str]) -> int:
    jobs = 1
    if argv[:1] == ["--jobs"]:
        jobs, argv = int(argv[1]), argv[2:]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *argv], capture_output=True, text=True
    )
    tests = [line for line in collected.stdout.splitlines() if "::" in line]
    if collected.returncode not in (0, 5) or not tests:
        print(collected.stdout[-3000:], collected.stderr[-3000:], sep="\n")
        return collected.returncode or 1
    failed, started = [], time.monotonic()
    # Most of a test's time is one process starting vLLM (single-threaded imports): --jobs 2 overlaps two of them.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for k, (test, ok, tail) in enumerate(pool.map(run_one, tests), 1):
            print(f"[{k}/{len(tests)}] {'ok    ' if ok else 'FAILED'} {test}", flush=True)
            if not ok:
                failed.append(test)
                print(tail, flush=True)
    print(f"{len(tests) - len(failed)} passed, {len(failed)} failed in {time.monotonic() - started:.0f} s")
    for test in failed:
        print(f"FAILED {test}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
