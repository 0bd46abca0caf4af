"""Which binding every name in a Python program refers to, as the compiler decides it (the stdlib's symtable).

    scopes = Scopes(source)                 # raises Unsupported where the walk and symtable cannot be matched
    for use in scopes.uses:                 # every place a name is written (see Use.kind)
        use.scope, use.name, use.owner      # the scope it is written in; the scope whose binding it is
        use.rename("new")                   # changes scopes.tree in place
    scopes.use_of(name_node)                # the Use of one ast.Name node

Why a walk of our own beside symtable: symtable says how each name is bound in each scope (local, free, global)
but not which node lies in which scope. The walk mirrors CPython's symtable pass (decorators, default values,
annotations and a comprehension's first iterable belong to the enclosing scope; a walrus in a comprehension binds
in the enclosing function), pairs every scope it finds with symtable's table for it, and checks the pairing
(every name the walk saw in a scope must be in that scope's table): a construct the walk gets wrong is refused,
never renamed wrongly. Refused too: `from m import *` and private names mangled inside classes.
"""

from __future__ import annotations

import ast
import symtable
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

COMPREHENSIONS = {
    ast.ListComp: "listcomp",
    ast.SetComp: "setcomp",
    ast.DictComp: "dictcomp",
    ast.GeneratorExp: "genexpr",
}


class Unsupported(ValueError):
    """The program uses something whose names cannot be resolved safely: rewriting it is refused."""


@dataclass(eq=False)
class Scope:
    node: ast.AST
    kind: str  # "module", "function", "lambda", "class", "comprehension"
    name: str  # symtable's name for it: "top", the function's or class's name, "lambda", "listcomp", ...
    parent: Scope | None
    table: symtable.SymbolTable | None = None
    children: list[Scope] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)

    def is_local(self, name: str) -> bool:
        try:
            return self.table.lookup(name).is_local()
        except KeyError:
            return False

    def inside(self, other: Scope) -> bool:
        """This scope is `other` or nested in it."""
        scope = self
        while scope is not None and scope is not other:
            scope = scope.parent
        return scope is other


@dataclass(eq=False)
class Use:
    node: ast.AST
    field: str  # the attribute that holds the name ("id", "arg", "name", "rest", "names")
    scope: Scope
    binds: bool  # it binds the name (store, del, argument, def, except-as, match capture, import)
    kind: str  # "name", "arg", "def", "except", "match", "declare" (global/nonlocal), "import"
    name: str  # as written in the source (rename() does not change it)
    index: int | None = None  # position in a global/nonlocal statement's names
    owner: Scope | None = None

    def rename(self, new: str) -> None:
        if self.kind == "import":
            raise Unsupported(f"renaming the imported name {self.name!r}")
        if self.index is None:
            setattr(self.node, self.field, new)
        else:
            self.node.names[self.index] = new


class _Walk(ast.NodeVisitor):
    def __init__(self, module: ast.Module, future_annotations: bool):
        self.root = self.scope = Scope(module, "module", "top", None)
        self.uses: list[Use] = []
        self.future_annotations = future_annotations  # annotations are then strings: symtable skips them

    def use(self, node, field_name: str, binds: bool, kind: str, name: str | None = None, index=None):
        name = getattr(node, field_name) if name is None else name
        if name.startswith("__") and not name.endswith("__") and self._in_class():
            raise Unsupported(f"the private name {name!r} is mangled inside a class")
        use = Use(node, field_name, self.scope, binds, kind, name, index)
        self.scope.uses.append(use)
        self.uses.append(use)

    def _in_class(self) -> bool:
        scope = self.scope
        while scope is not None and scope.kind != "class":
            scope = scope.parent
        return scope is not None

    @contextmanager
    def enter(self, node, kind: str, name: str):
        scope = Scope(node, kind, name, self.scope)
        self.scope.children.append(scope)
        self.scope = scope
        try:
            yield
        finally:
            self.scope = scope.parent

    def visit_Name(self, node):
        self.use(node, "id", not isinstance(node.ctx, ast.Load), "name")

    def _defaults(self, args: ast.arguments):
        for value in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(value)

    def _function(self, node):
        self._defaults(node.args)
        if not self.future_annotations:
            for arg in _all_args(node.args):
                if arg.annotation is not None:
                    self.visit(arg.annotation)
            if node.returns is not None:
                self.visit(node.returns)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.use(node, "name", True, "def")
        with self.enter(node, "function", node.name):
            for arg in _all_args(node.args):
                self.use(arg, "arg", True, "arg")
            for stmt in node.body:
                self.visit(stmt)

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node):
        self._defaults(node.args)
        with self.enter(node, "lambda", "lambda"):
            for arg in _all_args(node.args):
                self.use(arg, "arg", True, "arg")
            self.visit(node.body)

    def visit_ClassDef(self, node):
        for expr in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
            self.visit(expr)
        self.use(node, "name", True, "def")
        with self.enter(node, "class", node.name):
            for stmt in node.body:
                self.visit(stmt)

    def _comprehension(self, node):
        self.visit(node.generators[0].iter)
        with self.enter(node, "comprehension", COMPREHENSIONS[type(node)]):
            for k, generator in enumerate(node.generators):
                self.visit(generator.target)
                if k:
                    self.visit(generator.iter)
                for condition in generator.ifs:
                    self.visit(condition)
            for part in (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,):
                self.visit(part)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.use(node, "name", True, "except")
        for stmt in node.body:
            self.visit(stmt)

    def visit_MatchAs(self, node):
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.use(node, "name", True, "match")

    def visit_MatchStar(self, node):
        if node.name:
            self.use(node, "name", True, "match")

    def visit_MatchMapping(self, node):
        for part in [*node.keys, *node.patterns]:
            self.visit(part)
        if node.rest:
            self.use(node, "rest", True, "match")

    def _declare(self, node):
        for k, name in enumerate(node.names):
            self.use(node, "names", False, "declare", name=name, index=k)

    visit_Global = visit_Nonlocal = _declare

    def _import(self, node):
        for alias in node.names:
            if alias.name == "*":
                raise Unsupported("`import *` binds names that cannot be known")
            self.use(alias, "asname", True, "import", name=alias.asname or alias.name.split(".")[0])

    visit_Import = visit_ImportFrom = _import


def _all_args(args: ast.arguments) -> list[ast.arg]:
    rest = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *rest]


def _pair(scope: Scope, table: symtable.SymbolTable) -> None:
    """Give every scope of the walk its symtable table, matched by (type, name, line) in order, and check it."""
    seen = {u.name for u in scope.uses}
    known = set(table.get_identifiers())
    if not seen <= known or (scope.kind == "class") != (table.get_type() == "class"):
        raise Unsupported(f"scope {scope.name!r} (line {table.get_lineno()}) does not match the compiler's")
    scope.table = table
    ours, theirs = defaultdict(list), defaultdict(list)
    for child in scope.children:
        ours[(child.kind == "class", child.name, child.node.lineno)].append(child)
    for child in table.get_children():
        theirs[(child.get_type() == "class", child.get_name(), child.get_lineno())].append(child)
    if {k: len(v) for k, v in ours.items()} != {k: len(v) for k, v in theirs.items()}:
        raise Unsupported(f"the nested scopes of {scope.name!r} do not match the compiler's")
    for key, children in ours.items():
        for child, child_table in zip(children, theirs[key]):
            _pair(child, child_table)


def _owner(use: Use, root: Scope) -> Scope:
    """The scope whose binding `use` refers to."""
    scope = use.scope
    if scope is root:
        return root
    symbol = scope.table.lookup(use.name)
    if symbol.is_global():
        return root
    if symbol.is_free():  # a closure's name (nonlocal included): the nearest enclosing function that binds it
        outer = scope.parent
        while outer is not root:
            if outer.kind != "class" and outer.is_local(use.name):
                return outer
            outer = outer.parent
        raise Unsupported(f"no enclosing binding of the free name {use.name!r}")
    if symbol.is_local():
        return scope
    raise Unsupported(f"cannot tell where {use.name!r} is bound")


class Scopes:
    def __init__(self, source: str):
        self.tree = ast.parse(source)
        future = any(
            isinstance(s, ast.ImportFrom) and s.module == "__future__" and any(a.name == "annotations" for a in s.names)
            for s in self.tree.body
        )
        walk = _Walk(self.tree, future)
        walk.visit(self.tree)
        self.root, self.uses = walk.root, walk.uses
        _pair(self.root, symtable.symtable(source, "<program>", "exec"))
        for use in self.uses:
            use.owner = _owner(use, self.root)
        self._by_node = {id(u.node): u for u in self.uses if u.kind == "name"}

    def use_of(self, node: ast.Name) -> Use:
        return self._by_node[id(node)]

    def scopes(self) -> list[Scope]:
        """Every scope, parents before children, in source order."""
        out, stack = [], [self.root]
        while stack:
            scope = stack.pop()
            out.append(scope)
            stack.extend(reversed(scope.children))
        return out

    def uses_of(self, owner: Scope, name: str) -> list[Use]:
        """Every use of the binding `name` of scope `owner` (in it or in the scopes that see it)."""
        return [u for u in self.uses if u.owner is owner and u.name == name]

    def names(self) -> set[str]:
        return {u.name for u in self.uses}
