"""Executing model-written code (HumanEval scoring) in isolation, only after the user opts in.

    from rephraser.sandbox import Program, Sandbox, SandboxConfig
    with Sandbox(SandboxConfig(workers=4), consent=True) as box:
        results = box.run([Program("HumanEval/0", source), ...])   # same order as given

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
    "raise_on_errors",
]
