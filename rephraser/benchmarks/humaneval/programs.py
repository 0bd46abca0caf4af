"""A rephrased HumanEval program (prompt + solution, functions renamed) -> a doc scored by the original tests.

    doc = rephrased_doc(problem, text)   # None when `text` is not valid Python (or has no function)
    doc["prompt"]        the rephrased program up to the end of its entry function's docstring
    doc["gold"]          the rest (the rephrased solution)
    doc["entry_point"]   the rephrased entry function, which the original `check(candidate)` is run on
    doc["test"]          the original tests, plus aliases for every original name they call directly

Which rephrased function is the entry point: the original prompt's top-level functions are mapped to the
rephrased ones by position when both have as many; when the rephrase added functions, each original
function maps to the first unused rephrased function of the same arity that no other rephrased function
calls (a helper the rephrase introduced is called by its user; an added example usage or sibling is not
the entry when it comes after it). The original tests call `candidate` and, for some problems, other
original names directly (`poly`, `encode_cyclic`, `sort_third`): each such name gets an alias to its mapped
rephrased function. The prompt ends after the entry function's docstring, also when imports or filler
statements come before the docstring (HumanEval/115 puts `import math` first).
"""

from __future__ import annotations

import ast

SKIPPABLE = (ast.Import, ast.ImportFrom, ast.Pass)


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)]


def _arity(fn: ast.FunctionDef) -> int:
    return len(fn.args.posonlyargs) + len(fn.args.args)


def _called_names(fn: ast.FunctionDef) -> set[str]:
    return {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def map_functions(original: list[ast.FunctionDef], rephrased: list[ast.FunctionDef]) -> dict[str, ast.FunctionDef]:
    """Original function name -> the rephrased function that plays its part."""
    if len(original) == len(rephrased):
        return {o.name: r for o, r in zip(original, rephrased)}
    called = {name for fn in rephrased for name in _called_names(fn) if name != fn.name}
    original_called = {name for fn in original for name in _called_names(fn) if name != fn.name}
    mapping, used = {}, set()
    for o in original:
        pool = [r for r in rephrased if r.name not in used]
        same = [r for r in pool if _arity(r) == _arity(o)]
        # A function the original calls (poly) may be called in the rephrase too; others may not be helpers.
        not_helpers = [r for r in same if o.name in original_called or r.name not in called]
        pick = (not_helpers or same or pool or [None])[0]
        if pick is not None:
            mapping[o.name] = pick
            used.add(pick.name)
    return mapping


def prompt_end_line(fn: ast.FunctionDef) -> int:
    """1-based line after which the entry function's prompt ends: its docstring's last line, even when
    imports or `pass` come first; without a docstring, the line before its first statement."""
    for stmt in fn.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            return stmt.end_lineno
        if not isinstance(stmt, SKIPPABLE):
            break
    return fn.body[0].lineno - 1


def names_used_by_tests(test: str, names: set[str]) -> set[str]:
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names}


def rephrased_doc(problem: dict, text: str) -> dict | None:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    original, rephrased = _functions(ast.parse(problem["prompt"])), _functions(tree)
    if not original or not rephrased:
        return None
    mapping = map_functions(original, rephrased)
    entry = mapping.get(problem["entry_point"]) or rephrased[-1]
    end = prompt_end_line(entry)
    lines = text.splitlines(keepends=True)
    called = names_used_by_tests(problem["test"], {o.name for o in original})
    aliases = [
        f"{name} = {mapping[name].name}" for name in sorted(called) if name in mapping and mapping[name].name != name
    ]
    test = problem["test"] + ("\n" + "\n".join(aliases) + "\n" if aliases else "")
    return {
        **problem,
        "prompt": "".join(lines[:end]),
        "entry_point": entry.name,
        "test": test,
        "gold": "".join(lines[end:]),
        "original_entry_point": problem["entry_point"],
    }
