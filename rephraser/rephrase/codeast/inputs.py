"""The inputs of the differential check (differential.py), built on the trusted side from the problem's tests.

    calls = build_inputs(task_id, original_program, entry_point, test_code, generated=40)
    calls[0].args, calls[0].kwargs          # the tests' literal calls first, then generated ones
    eps = tolerance(test_code)              # the tests' own float tolerance (0.0: exact)
    render(value)                           # Python source for a value, for the sandboxed program

(a) Every `candidate(...)` call in the tests whose arguments are literals (ast.literal_eval: nothing is
executed). (b) Generated inputs of the same types, seeded by the task id: a test input with one or two of its
arguments mutated, keeping each argument's type: ints (0, ±1, ±2, neighbours, the negation, double, half,
small random ones, ±1000), floats (0.0, -0.0, halves, negations, small random ones), strings (empty, one
character, reversed, case changes, a character inserted or dropped, unicode: é ß Ω 日本 🙂), lists (empty, one
element, reversed, shuffled, an element dropped, duplicated, mutated or added), tuples (one element mutated:
the arity is kept), dicts (a value mutated, a key dropped or added) and sets. When no test call is literal,
the entry point's annotations give the types (`xs: list`, `s: str`).
"""

from __future__ import annotations

import ast
import math
import random
from dataclasses import dataclass, field

UNICODE = ("é", "ß", "Ω", "日本", "🙂")
LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


@dataclass(frozen=True)
class Call:
    args: tuple
    kwargs: dict = field(default_factory=dict)


def literal_calls(test_code: str) -> tuple[list[Call], int]:
    """The literal `candidate(...)` calls of the tests, in source order without repeats, and how many calls
    were not literal (left out)."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return [], 0
    found = sorted(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "candidate"
        ),
        key=lambda n: (n.lineno, n.col_offset),
    )
    calls, seen, skipped = [], set(), 0
    for node in found:
        try:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise ValueError("unpacked arguments")
            call = Call(
                tuple(ast.literal_eval(a) for a in node.args), {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            )
        except LITERAL_ERRORS:
            skipped += 1
            continue
        if render(call.args) + render(call.kwargs) not in seen:
            seen.add(render(call.args) + render(call.kwargs))
            calls.append(call)
    return calls, skipped


def tolerance(test_code: str) -> float:
    """The largest `eps` of the tests' `abs(x - y) < eps` / `math.fabs(...) <= eps` checks; 0.0 if none."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return 0.0
    found = [0.0]
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.Lt, ast.LtE))):
            continue
        left, right = node.left, node.comparators[0]
        func = left.func if isinstance(left, ast.Call) else None
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in ("abs", "fabs"):
            try:
                eps = ast.literal_eval(right)
            except LITERAL_ERRORS:
                continue
            if isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps > 0:
                found.append(float(eps))
    return max(found)


def annotated_calls(program: str, entry: str) -> list[Call]:
    """Seed inputs from the entry point's annotations, for tests with no literal call."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return []
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry), None)
    if fn is None:
        return []
    params = [*fn.args.posonlyargs, *fn.args.args]
    columns = [_examples(ast.unparse(a.annotation) if a.annotation else "") for a in params]
    return [Call(tuple(column[k % len(column)] for column in columns)) for k in range(3)] if params else [Call(())]


def _examples(annotation: str) -> list:
    text = annotation.replace("typing.", "").replace(" ", "")
    scalars = {"int": [3, 0, -7], "float": [1.5, 0.0, -2.25], "str": ["abc", "", "Hello World"], "bool": [True]}
    if text in scalars:
        return scalars[text]
    inner = text[text.find("[") + 1 : -1] if "[" in text else "int"
    element = scalars.get(inner.split(",")[0], scalars["int"])
    if text.lower().startswith(("list", "sequence", "iterable")):
        return [list(element), [], [element[0]] * 2 + list(element)]
    if text.lower().startswith("tuple"):
        return [tuple(element[:2]), (element[0],)]
    if text.lower().startswith(("dict", "mapping")):
        return [{"a": element[0]}, {}]
    return [1, 0, -1]


def build_inputs(task_id: str, program: str, entry: str, test_code: str, generated: int = 40) -> list[Call]:
    """The tests' literal calls, then up to `generated` new ones mutated from them (seeded by the task id)."""
    calls, _ = literal_calls(test_code)
    seeds = calls or annotated_calls(program, entry)
    rng = random.Random(f"rephraser differential {task_id}")
    pool = _pool(seeds)
    out, seen = list(calls), {render(c.args) + render(c.kwargs) for c in calls}
    for _ in range(generated * 20):
        if len(out) - len(calls) >= generated or not seeds:
            break
        call = _mutated_call(rng.choice(seeds), rng, pool)
        key = render(call.args) + render(call.kwargs)
        if key not in seen:
            seen.add(key)
            out.append(call)
    return out


def _pool(seeds: list[Call]) -> dict[str, list]:
    """Every value of the seeds by type name, nested ones included: material for new list elements."""
    pool: dict[str, list] = {}

    def add(value, depth=0):
        pool.setdefault(type(value).__name__, []).append(value)
        if depth < 3 and isinstance(value, (list, tuple, set, frozenset)):
            for v in value:
                add(v, depth + 1)
        if depth < 3 and isinstance(value, dict):
            for k, v in value.items():
                add(k, depth + 1)
                add(v, depth + 1)

    for call in seeds:
        for value in [*call.args, *call.kwargs.values()]:
            add(value)
    return pool


def _mutated_call(seed: Call, rng: random.Random, pool: dict) -> Call:
    args, kwargs = list(seed.args), dict(seed.kwargs)
    slots = [("arg", k) for k in range(len(args))] + [("kw", k) for k in kwargs]
    for kind, key in rng.sample(slots, min(len(slots), rng.choice((1, 1, 2)))):
        if kind == "arg":
            args[key] = mutate(args[key], rng, pool)
        else:
            kwargs[key] = mutate(kwargs[key], rng, pool)
    return Call(tuple(args), kwargs)


def mutate(value, rng: random.Random, pool: dict, depth: int = 0):
    """Another value of the same type (containers keep their kind; tuples their length)."""
    kind = type(value)
    if kind is bool:
        return not value
    if kind is int:
        return rng.choice(
            (0, 1, -1, 2, -2, value + 1, value - 1, -value, 2 * value, value // 2, rng.randint(-20, 50), 1000, -1000)
        )
    if kind is float:
        return rng.choice(
            (0.0, -0.0, 0.5, -1.5, value + 0.5, -value, value * 2, value / 3, round(rng.uniform(-100, 100), 3))
        )
    if kind is str:
        return _mutate_str(value, rng)
    if kind in (list, set, frozenset):
        return kind(_mutate_list(list(value), rng, pool, depth))
    if kind is tuple:
        if not value or depth > 3:
            return value
        k = rng.randrange(len(value))
        return value[:k] + (mutate(value[k], rng, pool, depth + 1),) + value[k + 1 :]
    if kind is dict:
        return _mutate_dict(value, rng, pool, depth)
    return value


def _mutate_str(value: str, rng: random.Random) -> str:
    alphabet = sorted(set(value) | set("aZ0 "))
    k = rng.randrange(len(value) + 1)
    edits = [
        "",
        rng.choice(alphabet),
        value[::-1],
        value.upper(),
        value.lower(),
        value.swapcase(),
        value[:k] + rng.choice(alphabet) + value[k:],
        value[:k] + value[k + 1 :],
        value + value,
        value[:k] + rng.choice(UNICODE) + value[k:],
    ]
    return rng.choice(edits)


def _mutate_list(items: list, rng: random.Random, pool: dict, depth: int) -> list:
    if not items:
        lists = [v for v in pool.get("list", []) if v]
        return list(rng.choice(lists)) if lists and rng.random() < 0.7 else []
    k = rng.randrange(len(items))
    shuffled = items[:]
    rng.shuffle(shuffled)
    edits = [
        [],
        [items[k]],
        items[::-1],
        shuffled,
        items[:k] + items[k + 1 :],
        items[:k] + [items[k]] + items[k:],
        items + [mutate(items[k], rng, pool, depth + 1)] if depth <= 3 else items,
        items[:k] + [mutate(items[k], rng, pool, depth + 1)] + items[k + 1 :] if depth <= 3 else items,
    ]
    return rng.choice(edits)


def _mutate_dict(value: dict, rng: random.Random, pool: dict, depth: int) -> dict:
    if not value or depth > 3:
        return {} if value else value
    out = dict(value)
    key = rng.choice(list(out))
    choice = rng.randrange(3)
    if choice == 0:
        out[key] = mutate(out[key], rng, pool, depth + 1)
    elif choice == 1:
        del out[key]
    else:
        out[mutate(key, rng, pool, depth + 1)] = mutate(out[key], rng, pool, depth + 1)
    return out


def render(value) -> str:
    """Python source that evaluates to `value` (floats that repr cannot write, inf and nan, included)."""
    kind = type(value)
    if kind is float and not math.isfinite(value):
        return f"float({str(value)!r})"
    if kind in (list, tuple):
        inner = ", ".join(render(v) for v in value)
        return f"[{inner}]" if kind is list else f"({inner}{',' if len(value) == 1 else ''})"
    if kind is dict:
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in value.items()) + "}"
    if kind in (set, frozenset):
        inner = ", ".join(sorted(render(v) for v in value))
        return f"{kind.__name__}([{inner}])"
    if value is None or kind in (bool, int, float, complex, str, bytes):
        return repr(value)
    raise TypeError(f"cannot render a {kind.__name__} as a literal")
