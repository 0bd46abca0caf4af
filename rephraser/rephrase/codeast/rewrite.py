"""`--backend code-ast`: offline, deterministic rewriting of a Python program (the study's code rephrase, no model).

    new = rewrite_program(problem["prompt"] + problem["canonical_solution"], variant=0)
    new.text, new.renamed          # the program, and {old function name: new name}
    text = break_runs(original, new.text, max_shared_words=10)

What changes (each step keeps the program's behaviour; the code-ast backend then checks that differentially,
differential.py, and `rephraser rephrase` runs the original tests on the new entry point, both in the sandbox;
a rewrite that fails either falls back to a more conservative variant):
  - every top-level function is renamed (synonyms for the words of its name), with every use that refers to
    it (pyscope.py resolves each name as the compiler does: a method or a local of the same name is another
    binding and keeps its name), and keyword arguments of direct calls follow its renamed parameters;
  - the local names of every function, and of the functions, lambdas and comprehensions inside it, are
    renamed where they are bound and wherever they are seen (closures, `nonlocal`, a walrus in a
    comprehension, match captures, except-as, del, default values, f-strings), variants 0 and 1. Not renamed:
    class bodies and what they hold (their names are attributes), imports, names declared global, the
    parameters of a function or lambda whose every call cannot be seen (it is stored or returned: a caller may
    pass them by keyword), and nothing at all in a function that reads names through strings (eval, locals);
  - `for t in range(...)` loops become `t_range = range(...); t = t_range.start; while t < t_range.stop: ...;
    t += step` where that cannot change behaviour (_loop_to_while says when), variant 0 only;
  - the docstring's prose is reworded (a fixed synonym table) and reflowed; its examples keep their values
    but are written as sentences with the new names (`Calling new_name([1,2,3]) gives 6.`);
  - a no-op `pass` follows each docstring.
A program whose names cannot be resolved safely (pyscope.Unsupported: `import *`, mangled private names, a
scope the compiler sees otherwise) is not rewritten. `break_runs` then breaks any run of words still shared
with the original (n-gram decontamination's test) with edits that leave the program's AST as it was, but for
one added `pass` statement. Variants: 0 = everything, 1 = no loop rewriting, 2 = functions renamed and
docstrings rewritten only.
"""

from __future__ import annotations

import ast
import copy
import re
import textwrap
from dataclasses import dataclass

from rephraser.rephrase.codeast.loops import rewrite_loops
from rephraser.rephrase.codeast.rename import DEFINITIONS, Program, apply_renames, local_renames, module_renames
from rephraser.rephrase.codeast.runbreak import break_runs
from rephraser.rephrase.codeast.scope import Scope

__all__ = ["VARIANTS", "Rewrite", "break_runs", "rewrite_docstring", "rewrite_program", "test_names"]

NAME_WORDS = {
    "has": "contains",
    "close": "near",
    "elements": "items",
    "element": "item",
    "get": "fetch",
    "count": "tally",
    "sum": "total",
    "string": "text",
    "strings": "texts",
    "list": "seq",
    "number": "value",
    "numbers": "values",
    "is": "check",
    "find": "locate",
    "sort": "order",
    "sorted": "ordered",
    "max": "largest",
    "min": "smallest",
    "all": "every",
    "make": "build",
    "remove": "drop",
    "parse": "read",
    "separate": "split",
    "groups": "clusters",
    "filter": "select",
    "by": "using",
    "truncate": "cut",
    "below": "under",
    "above": "over",
    "zero": "nil",
    "mean": "average",
    "absolute": "abs",
    "deviation": "spread",
    "intersperse": "interleave",
    "nested": "deep",
    "parens": "brackets",
    "prefix": "head",
    "prefixes": "heads",
    "palindrome": "mirror",
    "xor": "exclusive_or",
    "longest": "greatest_length",
    "greatest": "biggest",
    "common": "shared",
    "divisor": "factor",
    "sequence": "series",
    "distinct": "unique",
    "characters": "chars",
    "music": "melody",
    "how": "times",
    "many": "count",
    "times": "occurrences",
    "strlen": "length_of",
    "largest": "biggest",
    "factorize": "split_factors",
    "duplicates": "repeats",
    "flip": "swap",
    "case": "letter_case",
    "concatenate": "join",
    "positive": "above_zero",
    "prime": "primal",
    "poly": "polynomial",
    "third": "every_third",
    "unique": "distinct",
    "fib": "fibonacci",
    "encode": "encipher",
    "decode": "decipher",
    "cyclic": "rotating",
    "shift": "offset",
    "triples": "triplets",
    "pairs": "couples",
    "base": "radix",
    "area": "surface",
    "triangle": "trigon",
    "median": "middle",
    "vowels": "vowel_letters",
    "digits": "figures",
    "word": "term",
    "words": "terms",
    "check": "verify",
    "even": "divisible_by_two",
    "odd": "not_even",
    "right": "correct",
}
IDENTIFIER_WORDS = {
    **NAME_WORDS,
    "i": "idx",
    "j": "jdx",
    "k": "kdx",
    "n": "num",
    "m": "mval",
    "x": "xval",
    "y": "yval",
    "s": "text_s",
    "l": "seq_l",
    "a": "aval",
    "b": "bval",
    "c": "cval",
    "res": "outcome",
    "result": "outcome",
    "ret": "outcome",
    "ans": "answer",
    "arr": "array",
    "lst": "items",
    "idx": "position",
    "num": "quantity",
    "text": "content",
    "value": "amount",
    "values": "amounts",
    "paren": "bracket",
    "operator": "op_symbols",
    "operand": "operands_list",
    "grid": "matrix",
    "capacity": "limit",
    "threshold": "limit",
    "delimeter": "sep",
}
PROSE_WORDS = {
    "given": "provided",
    "return": "give back",
    "returns": "gives back",
    "list": "sequence",
    "lists": "sequences",
    "number": "value",
    "numbers": "values",
    "string": "text",
    "strings": "texts",
    "check": "determine",
    "if": "whether",
    "the": "this",
    "function": "routine",
    "input": "argument",
    "each": "every",
    "find": "identify",
    "that": "which",
    "all": "every",
    "only": "just",
    "should": "must",
    "will": "shall",
    "example": "instance",
    "examples": "instances",
    "of": "from",
    "you": "one",
    "are": "happen to be",
    "is": "happens to be",
    "have": "possess",
    "has": "possesses",
    "write": "implement",
    "take": "accept",
    "takes": "accepts",
    "in": "within",
    "into": "to",
    "with": "using",
    "and": "as well as",
    "or": "alternatively",
    "not": "never",
    "a": "one",
    "an": "one",
    "to": "toward",
}
EXAMPLE = re.compile(r"^\s*>>>\s?(?P<code>.*)$")
VARIANTS = 3


@dataclass
class Rewrite:
    text: str
    renamed: dict[str, str]


class _ExampleRenamer(ast.NodeTransformer):
    """Names in a docstring example (text only: it is never run)."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node


def _reword(text: str) -> str:
    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = PROSE_WORDS.get(word.lower())
        if new is None:
            return word
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return re.sub(r"[A-Za-z]+", swap, text)


def _compact(expr: ast.expr) -> str:
    """A literal or call written without spaces after commas: the same values, other words after normalising."""
    return re.sub(r",\s+", ",", ast.unparse(expr))


def _example_sentence(code: str, output: str, renamed: dict[str, str]) -> str | None:
    try:
        expr = ast.parse(code.strip(), mode="eval").body
    except SyntaxError:
        return None
    expr = _ExampleRenamer(renamed).visit(copy.deepcopy(expr))
    rendered = _compact(expr)
    return f"Calling {rendered} gives {output.strip()}." if output.strip() else f"Running {rendered} is valid."


def rewrite_docstring(doc: str, renamed: dict[str, str]) -> str:
    """Prose reworded and reflowed, examples as sentences that keep their values, names updated."""
    lines = textwrap.dedent(doc).strip("\n").splitlines()
    prose, examples, k = [], [], 0
    while k < len(lines):
        match = EXAMPLE.match(lines[k])
        if match:
            output = []
            k += 1
            while k < len(lines) and lines[k].strip() and not EXAMPLE.match(lines[k]):
                output.append(lines[k].strip())
                k += 1
            sentence = _example_sentence(match["code"], " ".join(output), renamed)
            examples.append(sentence or _rename_in_text(f"{match['code']} -> {' '.join(output)}", renamed))
            continue
        prose.append(lines[k].strip())
        k += 1
    body = _reword(_rename_in_text(" ".join(p for p in prose if p), renamed))
    text = textwrap.fill(body, width=76) if body else ""
    if examples:
        text += ("\n\n" if text else "") + "For instance:\n" + "\n".join(f"  {e}" for e in examples)
    return text


def _rename_in_text(text: str, renamed: dict[str, str]) -> str:
    for old, new in renamed.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


def test_names(test_code: str) -> set[str]:
    """The names a problem's test code uses or defines (it runs in the program's module: a rewrite must not
    introduce them)."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names | {n.name for n in ast.walk(tree) if isinstance(n, DEFINITIONS)}


def rewrite_program(source: str, variant: int = 0, reserved: frozenset[str] | set[str] = frozenset()) -> Rewrite:
    """The program rewritten (see the module docstring); `reserved`: names the rewrite must not introduce (e.g.
    those the tests define). Raises SyntaxError or pyscope.Unsupported for a program it cannot rewrite safely."""
    program = Program(source)
    tree = program.tree
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    # every name in use, keywords passed to calls too (a parameter renamed to one would take it over)
    taken = program.scopes.names() | set(reserved) | {k.arg for k in ast.walk(tree) if isinstance(k, ast.keyword)}
    renamed = module_renames(program, functions, taken, NAME_WORDS)
    maps: dict[Scope, dict[str, str]] = {program.root: renamed}
    docs = {}
    for fn in functions:
        local = {} if variant >= 2 else local_renames(program, fn, taken, IDENTIFIER_WORDS)
        maps.update(local)
        own = next((m for s, m in local.items() if s.node is fn), {})
        docs[id(fn)] = (ast.get_docstring(fn, clean=False), {**renamed, **own})
    apply_renames(program, maps)
    for fn in functions:
        if variant == 0:
            rewrite_loops(program, fn, taken)
        doc, names = docs[id(fn)]
        if doc is not None:
            fn.body[0] = ast.Expr(ast.Constant(_indented(rewrite_docstring(doc, names), "    ")))
            fn.body.insert(1, ast.Pass())
    ast.fix_missing_locations(tree)
    return Rewrite(ast.unparse(tree) + "\n", renamed)


def _indented(doc: str, indent: str) -> str:
    """The docstring's later lines indented as the function body (ast.unparse writes a docstring's value as
    it is: the indentation must be part of the value; the docstrings we do not rewrite already have theirs)."""
    first, *rest = doc.split("\n")
    return "\n".join([first, *(indent + line if line.strip() else line for line in rest)])
