"""`for t in range(...)` -> `while`, where that cannot change what the function does.

    converted = rewrite_loops(program, fn, taken)     # fn: a top-level function of program.tree, in place

    for t in range(a, b, s):          t_range = range(a, b, s)
        body                  ->      t = t_range.start
                                      while t < t_range.stop:      (> for a negative step)
                                          body
                                          t += s
range() is still called, before t is assigned: the same ints, the same errors (a float or a str bound
raises TypeError as before), and `for n in range(1, n + 1)` still reads the old n. What is refused is in
_loop_to_while's docstring.
"""

from __future__ import annotations

import ast

from rephraser.rephrase.codeast.rename import DEFINITIONS, Program, new_name
from rephraser.rephrase.codeast.scope import Scope

# Builtins that run a generator expression to its end (or stop early) before they return: a loop variable the
# generator reads cannot change under it.
CONSUMERS = frozenset({"all", "any", "sum", "min", "max", "sorted", "list", "tuple", "set", "frozenset", "dict"})


def _own_continue(body: list[ast.stmt]) -> bool:
    """A `continue` of this loop (not of a loop inside it, except in that loop's else clause)."""
    for stmt in body:
        if isinstance(stmt, ast.Continue):
            return True
        if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            if _own_continue(stmt.orelse):
                return True
            continue
        if isinstance(stmt, DEFINITIONS):
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(stmt, name, []):
                if _own_continue(child.body if isinstance(child, (ast.ExceptHandler, ast.match_case)) else [child]):
                    return True
    return False


def _range_step(call: ast.Call) -> int | None:
    """The step of `range(...)` when it is a literal non-zero int (the while loop's test depends on its sign)."""
    if len(call.args) < 3:
        return 1
    try:
        step = ast.literal_eval(call.args[2])
    except ValueError:
        return None
    return step if type(step) is int and step != 0 else None


def _read_at_once(program: Program, scope: Scope, fn_scope: Scope) -> bool:
    """A use in `scope` is read while the loop's iteration runs: `scope` is the function itself or comprehensions
    that are evaluated on the spot (a generator expression only when a consuming builtin receives it)."""
    while scope is not fn_scope:
        if scope.kind != "comprehension":
            return False
        if scope.name == "genexpr":
            parent = program.parents.get(id(scope.node))
            if not (isinstance(parent, ast.Call) and (program.is_builtin(parent.func, CONSUMERS) or _is_join(parent))):
                return False
        scope = scope.parent
    return True


def _is_join(call: ast.Call) -> bool:
    return (
        isinstance(call.func, ast.Attribute) and call.func.attr == "join" and isinstance(call.func.value, ast.Constant)
    )


def _loop_to_while(
    program: Program, loop: ast.For, fn_scope: Scope, taken: set[str], in_loop: bool
) -> list[ast.stmt] | None:
    """`for t in range(a, b, s): body` -> `t_range = range(a, b, s); t = t_range.start; while t < t_range.stop:
    body; t += s`, when that cannot change behaviour: range() is still called (same ints, same errors for a
    float or a huge bound), before t is assigned (`for n in range(n)` reads the old n); t is not rebound or
    deleted in the body, read by nothing that outlives the iteration (a closure, a lazy generator) and not used
    outside the loop but as the parameter it shadows; the loop has no else and no continue of its own; a
    literal step (its sign picks < or >). Else None."""
    it = loop.iter
    if not (
        isinstance(loop.target, ast.Name)
        and not loop.orelse
        and isinstance(it, ast.Call)
        and program.is_builtin(it.func, {"range"})
        and not it.keywords
        and 1 <= len(it.args) <= 3
        and not any(isinstance(a, ast.Starred) for a in it.args)
    ):
        return None
    step, target = _range_step(it), program.scopes.use_of(loop.target)
    if step is None or target.owner is not fn_scope or _own_continue(loop.body):
        return None
    in_body = {id(n) for stmt in loop.body for n in ast.walk(stmt)}
    in_iter = {id(n) for n in ast.walk(it)}
    for use in program.scopes.uses_of(fn_scope, target.name):
        if use is target or (use.kind == "arg" and use.scope is fn_scope):
            continue
        if id(use.node) in in_iter and not in_loop:
            continue
        if not (id(use.node) in in_body and not use.binds and use.kind != "declare"):
            return None
        if not _read_at_once(program, use.scope, fn_scope):
            return None
    name = loop.target.id
    span = new_name(f"{name}_range", taken, {})
    return [
        ast.Assign(targets=[ast.Name(span, ast.Store())], value=it),
        ast.Assign(targets=[ast.Name(name, ast.Store())], value=ast.Attribute(ast.Name(span, ast.Load()), "start")),
        ast.While(
            test=ast.Compare(
                ast.Name(name, ast.Load()),
                [ast.Lt() if step > 0 else ast.Gt()],
                [ast.Attribute(ast.Name(span, ast.Load()), "stop")],
            ),
            body=[
                *loop.body,
                ast.AugAssign(
                    ast.Name(name, ast.Store()), ast.Add() if step > 0 else ast.Sub(), ast.Constant(abs(step))
                ),
            ],
            orelse=[],
        ),
    ]


def rewrite_loops(program: Program, fn: ast.FunctionDef, taken: set[str]) -> int:
    """Every convertible `for ... in range(...)` of the function's own body (not nested functions) -> while.
    Returns how many were converted."""
    if program.introspective(fn):
        return 0
    fn_scope = next(s for s in program.root.children if s.node is fn)
    converted = 0

    def visit(body: list[ast.stmt], in_loop: bool) -> list[ast.stmt]:
        nonlocal converted
        out = []
        for stmt in body:
            if not isinstance(stmt, DEFINITIONS):
                loops = isinstance(stmt, (ast.For, ast.AsyncFor, ast.While))
                for attr in ("body", "orelse", "finalbody"):
                    if isinstance(getattr(stmt, attr, None), list):
                        setattr(stmt, attr, visit(getattr(stmt, attr), in_loop or (loops and attr == "body")))
            replaced = _loop_to_while(program, stmt, fn_scope, taken, in_loop) if type(stmt) is ast.For else None
            converted += replaced is not None
            out.extend(replaced or [stmt])
        return out

    fn.body = visit(fn.body, False)
    return converted
