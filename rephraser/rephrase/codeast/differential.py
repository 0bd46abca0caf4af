"""Does a rewritten program compute what the original computes? Both run on the same inputs, in the sandbox.

    checker = DifferentialChecker(consent=True)             # one Sandbox pool for every check it makes
    verdicts = checker.check([Case(task_id, original, entry, rewrite, rewrite_entry, test_code), ...])
    verdicts[0].same, verdicts[0].reason                    # True when no input told them apart; else why
    checker.close()

Inputs (diffinputs.py builds them on the trusted side): the literal arguments of every `candidate(...)` call in the
tests, and generated inputs of the same types, mutated from those (seeded by the task id). Each input is run
on the original's and the rewrite's entry point; they agree when both return the same value (floats within the
tests' own tolerance, else exactly; containers element by element) and leave the arguments the same (a
function may mutate them), or both raise the same exception type. An input on which the original itself
runs past its CPU allowance is skipped and counted; a rewrite that runs past a generous multiple of the
original's time differs (a loop that no longer ends).

One sandboxed program per case runs everything and raises at the first difference, so the sandbox's "passed"
(the trusted bootstrap saw the whole program return, which the program cannot fake) is the verdict "same";
the difference itself is read from the program's stderr, only to say why. A program that finds no input it
could compare raises too: an unchecked rewrite is never called the same.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass

from rephraser.rephrase.codeast.inputs import Call, build_inputs, render, tolerance

# Per call: the original's CPU allowance; the rewrite's is max(REWRITE_FLOOR_S, REWRITE_FACTOR x the original's).
CALL_CPU_S, REWRITE_FLOOR_S, REWRITE_FACTOR = 0.25, 1.0, 10.0
# Per program: inputs stop being started after this much CPU or wall time (the sandbox kills it at 20 s).
BUDGET_CPU_S, BUDGET_WALL_S = 5.0, 8.0


@dataclass(frozen=True)
class Case:
    task_id: str
    original: str  # the whole original program (HumanEval: prompt + canonical solution)
    entry: str  # its entry point
    rewrite: str  # the whole rewritten program
    rewrite_entry: str  # the rewrite's name for the entry point
    test: str  # the problem's test code (candidate(...) calls)


@dataclass
class Verdict:
    same: bool
    reason: str | None  # why not, for the record
    inputs: int  # inputs built for the case
    compared: int | None = None  # inputs the program compared, as it printed (None if it did not say)
    skipped: int | None = None  # inputs on which the original ran out of time


HARNESS = string.Template(
    r'''
import copy, io, json, random, re, signal, sys, time

ORIGINAL, REWRITE = $original, $rewrite
ENTRIES = ($entry, $rewrite_entry)
TOLERANCE = $tolerance
CALL_CPU_S, REWRITE_FLOOR_S, REWRITE_FACTOR = $call_cpu_s, $rewrite_floor_s, $rewrite_factor
BUDGET_CPU_S, BUDGET_WALL_S = $budget_cpu_s, $budget_wall_s
INPUTS = $inputs


class Slow(BaseException):
    pass


class Differs(Exception):
    pass


FIRED = [False]


def on_alarm(signum, frame):
    FIRED[0] = True
    raise Slow()


def normal(value, depth=0):
    """A comparable, printable form: the type's name with the value; iterators drained; no addresses."""
    kind = type(value)
    if depth > 40:
        return ("deep",)
    if value is None or kind in (bool, int, str, bytes, float):
        return (kind.__name__, value)
    if kind is complex:
        return ("complex", value.real, value.imag)
    if kind in (list, tuple):
        return (kind.__name__, [normal(v, depth + 1) for v in value])
    if kind is dict:
        return ("dict", sorted(([normal(k, depth + 1), normal(v, depth + 1)] for k, v in value.items()), key=repr))
    if kind in (set, frozenset):
        return (kind.__name__, sorted((normal(v, depth + 1) for v in value), key=repr))
    if hasattr(value, "__next__"):
        return ("iterator", [normal(v, depth + 1) for v in value])
    return (kind.__name__, re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value)))


def same(a, b):
    if type(a) is tuple and type(b) is tuple and a[:1] == b[:1] == ("float",):
        x, y = a[1], b[1]
        return x == y or (x != x and y != y) or abs(x - y) <= TOLERANCE
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def run(fn, args, kwargs, allowance):
    """(result, arguments after the call, printed text, CPU seconds); raises Slow past the allowance."""
    args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    random.seed(0)
    FIRED[0] = False
    printed, shown = io.StringIO(), sys.stdout
    start = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, allowance)
    try:
        try:
            sys.stdout = printed
            result = ("returned", normal(fn(*args, **kwargs)))
        except Slow:
            raise
        except BaseException as e:
            result = ("raised", type(e).__name__)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        sys.stdout = shown
    if FIRED[0]:  # the function caught the alarm itself (a bare except): its result is not its own
        raise Slow()
    return result, normal((args, kwargs)), printed.getvalue(), time.process_time() - start


def load(source, label, entry):
    namespace = {"__name__": "rephraser_differential_" + label}
    exec(compile(source, label + ".py", "exec"), namespace)
    return namespace[entry]


def say(text):
    if len(text) > 300:
        text = text[:300] + "..."
    return text


def plain(form):
    """A normal form written back as Python would show the value."""
    kind, rest = form[0], form[1:]
    if not rest:
        return "..."
    if kind in ("list", "tuple", "iterator"):
        inner = ", ".join(plain(v) for v in rest[0])
        return {"list": f"[{inner}]", "tuple": f"({inner}{',' if len(rest[0]) == 1 else ''})"}.get(kind, f"<{inner}>")
    if kind == "dict":
        return "{" + ", ".join(f"{plain(k)}: {plain(v)}" for k, v in rest[0]) + "}"
    if kind in ("set", "frozenset"):
        return kind + "({" + ", ".join(plain(v) for v in rest[0]) + "})"
    if kind == "complex":
        return repr(complex(*rest))
    return rest[0] if kind not in ("bool", "int", "str", "bytes", "float", "NoneType") else repr(rest[0])


def show(outcome):
    if outcome is None:
        return "ran past its time allowance"
    how, what = outcome[0]
    return "returned " + say(plain(what)) if how == "returned" else "raised " + what


def differs(k, args, kwargs, first, second, why):
    call = ", ".join([repr(a) for a in args] + [f"{key}={v!r}" for key, v in kwargs.items()])
    line = {"input": k, "call": say(call), "why": why, "original": show(first), "rewrite": show(second)}
    sys.stderr.write("DIFFERENTIAL " + json.dumps(line) + "\n")
    raise Differs(why)


def main():
    signal.signal(signal.SIGPROF, on_alarm)
    original = load(ORIGINAL, "original", ENTRIES[0])
    try:
        rewrite = load(REWRITE, "rewrite", ENTRIES[1])
    except BaseException as e:
        differs(-1, (), {}, None, None, f"the rewrite does not load: {type(e).__name__}: {e}")
    compared = skipped = 0
    cpu, wall = time.process_time(), time.monotonic()
    for k, (args, kwargs) in enumerate(INPUTS):
        if time.process_time() - cpu > BUDGET_CPU_S or time.monotonic() - wall > BUDGET_WALL_S:
            break
        try:
            first = run(original, args, kwargs, CALL_CPU_S)
        except Slow:
            skipped += 1
            continue
        try:
            second = run(rewrite, args, kwargs, max(REWRITE_FLOOR_S, REWRITE_FACTOR * first[3]))
        except Slow:
            differs(k, args, kwargs, first, None, "the rewrite ran past its time allowance")
        if not same(first[0], second[0]):
            differs(k, args, kwargs, first, second, "different result")
        if not same(first[1], second[1]):
            differs(k, args, kwargs, first, second, "different arguments after the call")
        if first[2] != second[2]:
            differs(k, args, kwargs, first, second, "different printed output")
        compared += 1
    if not compared:
        differs(-1, (), {}, None, None, f"no input could be compared ({skipped} ran past the time allowance)")
    print(json.dumps({"compared": compared, "skipped": skipped, "inputs": len(INPUTS)}))


main()
'''
)


def program_source(case: Case, calls: list[Call], eps: float) -> str:
    """The sandboxed program for one case (every value in it is rendered by us, never evaluated here)."""
    return HARNESS.substitute(
        original=repr(case.original),
        rewrite=repr(case.rewrite),
        entry=repr(case.entry),
        rewrite_entry=repr(case.rewrite_entry),
        tolerance=repr(eps),
        call_cpu_s=repr(CALL_CPU_S),
        rewrite_floor_s=repr(REWRITE_FLOOR_S),
        rewrite_factor=repr(REWRITE_FACTOR),
        budget_cpu_s=repr(BUDGET_CPU_S),
        budget_wall_s=repr(BUDGET_WALL_S),
        inputs="[\n" + "".join(f"    ({render(c.args)}, {render(c.kwargs)}),\n" for c in calls) + "]",
    )


def verdict_of(result, inputs: int) -> Verdict:
    """What the trusted side can tell from a sandbox result: passed = every compared input agreed."""
    if result.passed:
        counts = _last_json(result.stdout, "") or {}
        return Verdict(True, None, inputs, counts.get("compared"), counts.get("skipped"))
    found = _last_json(result.stderr, "DIFFERENTIAL ")
    if result.outcome == "failed" and found:
        where = f" on input {found['input'] + 1} of {inputs} ({found['call']})" if found.get("input", -1) >= 0 else ""
        detail = f": the original {found['original']}, the rewrite {found['rewrite']}" if where else ""
        return Verdict(False, f"{found['why']}{where}{detail}", inputs)
    return Verdict(False, f"the comparison program {result.outcome} ({result.detail})", inputs)


def _last_json(text: str, prefix: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            try:
                found = json.loads(line[len(prefix) :])
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
    return None


class DifferentialChecker:
    """Checks cases in batches on one Sandbox pool (made at the first check, with the HumanEval check's limits)."""

    def __init__(self, consent: bool, generated: int = 40, config=None):
        from rephraser.sandbox import ExecutionNotAllowed, SandboxConfig

        if not consent:
            raise ExecutionNotAllowed("the differential check runs programs: it needs --confirm-run-unsafe-code")
        self.generated = generated
        self.config = config or SandboxConfig(timeout_s=20.0, cpu_s=20)
        self._sandbox = None
        self._inputs: dict[tuple, tuple[list[Call], float]] = {}

    def inputs(self, case: Case) -> tuple[list[Call], float]:
        key = (case.task_id, case.original, case.entry, case.test)
        if key not in self._inputs:
            self._inputs[key] = (
                build_inputs(case.task_id, case.original, case.entry, case.test, self.generated),
                tolerance(case.test),
            )
        return self._inputs[key]

    def check(self, cases: list[Case]) -> list[Verdict]:
        from rephraser.sandbox import Program, Sandbox, raise_on_errors

        if not cases:
            return []
        built = [self.inputs(c) for c in cases]
        programs = [
            Program(f"{c.task_id} (differential)", program_source(c, calls, eps))
            for c, (calls, eps) in zip(cases, built)
        ]
        if self._sandbox is None:
            self._sandbox = Sandbox(self.config, consent=True)
        results = self._sandbox.run(programs)
        raise_on_errors(results)
        return [verdict_of(r, len(calls)) for r, (calls, _) in zip(results, built)]

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
