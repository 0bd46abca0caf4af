"""Renaming a program's functions and local names consistently: every use follows its own binding.

    program = Program(source)                                       # pyscope.Scopes plus the questions below
    renamed = module_renames(program, top_level_functions, taken, NAME_WORDS)      # {old: new}
    maps = {program.root: renamed, **local_renames(program, fn, taken, IDENTIFIER_WORDS)}
    apply_renames(program, maps)                                    # changes program.tree in place

A name is renamed per binding (pyscope resolves each use as the compiler does), never by its spelling: a
method or a local that shares a top-level function's name keeps its own; a closure, a `nonlocal`, a walrus in
a comprehension, a match capture, a default value follow the binding they refer to. `taken` holds every name
in use (and the ones reserved by the caller): a new name never shadows or is shadowed by another.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import zlib

from rephraser.rephrase.codeast.scope import Scope, Scopes, Use

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
INTROSPECTION = frozenset({"eval", "exec", "locals", "vars", "globals", "dir", "compile", "__import__"})


def new_name(name: str, taken: set[str], table: dict[str, str]) -> str:
    parts = [p for p in name.split("_") if p]
    swapped = [table.get(p.lower(), p) for p in parts]
    candidate = "_".join(swapped) if swapped != parts else (f"{name}_val" if len(name) <= 2 else f"the_{name}")
    candidate = candidate if candidate.isidentifier() else f"v_{zlib.crc32(name.encode()) % 10**6}"  # no hash(): seeded
    while candidate in taken or keyword.iskeyword(candidate) or hasattr(builtins, candidate):
        candidate += "_"
    taken.add(candidate)
    return candidate


class Program:
    """A parsed program with what the renamer and the loop rewriter ask of it: scopes, parents, definitions."""

    def __init__(self, source: str):
        self.scopes = Scopes(source)
        self.tree, self.root = self.scopes.tree, self.scopes.root
        self.parents = {id(c): p for p in ast.walk(self.tree) for c in ast.iter_child_nodes(p)}
        self.defined = {n.name for n in ast.walk(self.tree) if isinstance(n, DEFINITIONS)}

    def is_builtin(self, node: ast.expr, names: set[str] | frozenset[str]) -> bool:
        """`node` is one of the builtins `names`, not shadowed anywhere in the program."""
        if not (isinstance(node, ast.Name) and node.id in names):
            return False
        use = self.scopes.use_of(node)
        return use.owner is self.root and not any(u.binds for u in self.scopes.uses_of(self.root, use.name))

    def calls_external(self, call: ast.Call) -> bool:
        """The callee is not a function of this program (a builtin, an import, a method of something else):
        it calls what it is given with positional arguments."""
        func = call.func
        if isinstance(func, ast.Attribute):
            return func.attr not in self.defined
        if not isinstance(func, ast.Name):
            return False
        use = self.scopes.use_of(func)
        bindings = [u for u in self.scopes.uses_of(use.owner, use.name) if u.binds]
        return use.owner is self.root and all(u.kind == "import" for u in bindings)

    def direct_calls(self, owner: Scope, name: str) -> list[ast.Call] | None:
        """Every call of the function bound to `name` in `owner`, if every use of it is a call without `**` or an
        argument to an external callee (so keyword arguments can follow renamed parameters); else None."""
        calls, definitions = [], 0
        for use in self.scopes.uses_of(owner, name):
            parent = self.parents.get(id(use.node))
            if use.kind == "def":
                definitions += 1
            elif use.kind == "declare":
                continue
            elif use.binds:
                return None
            elif isinstance(parent, ast.Call) and parent.func is use.node:
                if any(k.arg is None for k in parent.keywords):
                    return None
                calls.append(parent)
            elif not (isinstance(parent, ast.Call) and self.calls_external(parent)):
                return None
        return calls if definitions == 1 else None

    def introspective(self, fn: ast.FunctionDef) -> bool:
        """The function reads names through strings (eval, locals, ...): renaming or adding locals would show."""
        return any(isinstance(n, ast.Name) and self.is_builtin(n, INTROSPECTION) for n in ast.walk(fn))


def module_renames(
    program: Program, functions: list[ast.FunctionDef], taken: set[str], words: dict[str, str]
) -> dict[str, str]:
    """Top-level function -> new name; kept when a class body binds the same name and also reads it (a class
    body reads an unbound name from the module, which renaming would break) or an import binds it."""
    renamed = {}
    for fn in functions:
        if fn.name in renamed:
            continue
        uses = program.scopes.uses_of(program.root, fn.name)
        classes = [s for s in program.scopes.scopes() if s.kind == "class" and s.is_local(fn.name)]
        if any(u.kind == "import" for u in uses) or any(
            u.name == fn.name and not u.binds for s in classes for u in s.uses
        ):
            continue
        renamed[fn.name] = new_name(fn.name, taken, words)
    return renamed


def _renamable_params(program: Program, scope: Scope) -> set[str]:
    """Parameters of `scope` that can be renamed: positional-only, *args and **kwargs always; the others when
    every call is seen (a function called directly: its keyword arguments are renamed along) or the function is
    handed straight to an external callee (a key= lambda)."""
    args = scope.node.args
    always = {a.arg for a in [*args.posonlyargs, args.vararg, args.kwarg] if a is not None}
    named = {a.arg for a in [*args.args, *args.kwonlyargs]}
    if scope.kind == "lambda":
        parent = program.parents.get(id(scope.node))
        parent = program.parents.get(id(parent)) if isinstance(parent, ast.keyword) else parent
        seen = isinstance(parent, ast.Call) and parent.func is not scope.node and program.calls_external(parent)
    elif scope.node.decorator_list:
        seen = False
    else:
        seen = program.direct_calls(_binding(scope).owner, scope.node.name) is not None
    return always | named if seen else always


def _binding(scope: Scope) -> Use:
    """The use that binds a function scope's name (its `def`), in the enclosing scope."""
    return next(u for u in scope.parent.uses if u.kind == "def" and u.node is scope.node)


def local_renames(
    program: Program, fn: ast.FunctionDef, taken: set[str], words: dict[str, str]
) -> dict[Scope, dict[str, str]]:
    """For the function's scope and every function, lambda and comprehension scope inside it (not class bodies
    and what they hold: their names are attributes), its own local names -> new names."""
    if program.introspective(fn):
        return {}
    top = next(s for s in program.root.children if s.node is fn)
    maps = {}
    for scope in program.scopes.scopes():
        if not scope.inside(top) or _under_class(scope, top):
            continue
        params = _renamable_params(program, scope) if scope.kind in ("function", "lambda") else set()
        arg_names = {u.name for u in scope.uses if u.kind == "arg"}
        imported = {u.name for u in scope.uses if u.kind == "import"}
        names = {
            u.name
            for u in scope.uses
            if u.owner is scope and u.name not in imported and (u.name in params or u.name not in arg_names)
        }
        maps[scope] = {n: new_name(n, taken, words) for n in sorted(names)}
    return maps


def _under_class(scope: Scope, top: Scope) -> bool:
    while scope is not top:
        if scope.kind == "class":
            return True
        scope = scope.parent
    return False


def apply_renames(program: Program, maps: dict[Scope, dict[str, str]]) -> None:
    """Rename every use whose binding is renamed, and keyword arguments of direct calls to renamed parameters."""
    keyword_maps = []
    for scope, mapping in maps.items():
        if scope.kind == "function":
            calls = program.direct_calls(_binding(scope).owner, scope.node.name) or []
            args = scope.node.args
            params = {a.arg: mapping[a.arg] for a in [*args.args, *args.kwonlyargs] if a.arg in mapping}
            keyword_maps += [(call, params) for call in calls]
    for call, params in keyword_maps:
        for kw in call.keywords:
            kw.arg = params.get(kw.arg, kw.arg)
    for use in program.scopes.uses:
        new = maps.get(use.owner, {}).get(use.name)
        if new is not None:
            use.rename(new)
