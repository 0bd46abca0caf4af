"""`--backend code-ast`: offline, deterministic rewriting of a Python program (the study's code rephrase, no model).

    new = rewrite_program(problem["prompt"] + problem["canonical_solution"], variant=0)
    new.text, new.renamed          # the program, and {old function name: new name}

What changes (each step keeps the program's behaviour; `rephraser rephrase` then runs the original tests
against the new entry point in the sandbox and falls back to a more conservative variant if they fail):
  - every top-level function is renamed (synonyms for the words of its name), calls to it too, and keyword
    arguments in those calls follow its renamed parameters;
  - the arguments and local variables of every function are renamed consistently (variant 0 and 1);
  - `for i in range(...)` loops become `while` loops where that cannot change behaviour: the target is not
    assigned in the body nor used after the loop, the body has no `continue`, the loop has no `else`,
    and the bound is evaluated once before the loop, as `range` does (variant 0 only);
  - the docstring's prose is reworded (a fixed synonym table) and reflowed; its examples keep their values
    but are written as sentences with the new names (`new_name([1,2,3]) returns 6`);
  - a no-op `pass` follows each docstring.
`break_runs` then inserts no-op statements (code) or a filler word (prose) inside any run of words still
shared with the original, until the longest run is below the limit (the n-gram decontamination test).
Variants: 0 = everything, 1 = no loop rewriting, 2 = functions renamed and docstrings rewritten only.
"""

from __future__ import annotations

import ast
import builtins
import copy
import keyword
import re
import textwrap
from dataclasses import dataclass

from rephraser.overlap import OverlapMeter, words

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


def _new_name(name: str, taken: set[str], table: dict[str, str]) -> str:
    parts = [p for p in name.split("_") if p]
    swapped = [table.get(p.lower(), p) for p in parts]
    candidate = "_".join(swapped) if swapped != parts else (f"{name}_val" if len(name) <= 2 else f"the_{name}")
    candidate = candidate if candidate.isidentifier() else f"v_{abs(hash(name)) % 10**6}"
    while candidate in taken or keyword.iskeyword(candidate) or hasattr(builtins, candidate):
        candidate += "_"
    taken.add(candidate)
    return candidate


def _bound_names(fn: ast.FunctionDef) -> set[str]:
    """Arguments and names bound anywhere in the function (not imports, globals or nonlocals)."""
    declared = {n for node in ast.walk(fn) if isinstance(node, (ast.Global, ast.Nonlocal)) for n in node.names}
    imported = {
        (a.asname or a.name).split(".")[0]
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for a in node.names
    }
    bound = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not fn:
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound - declared - imported


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str], calls: dict[str, dict[str, str]]):
        self.mapping, self.calls = mapping, calls  # names; function -> {param: new param} for keyword arguments

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_ExceptHandler(self, node):
        if node.name:
            node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in self.calls:
            for kw in node.keywords:
                if kw.arg:
                    kw.arg = self.calls[node.func.id].get(kw.arg, kw.arg)
        self.generic_visit(node)
        return node


def _has_continue(body: list[ast.stmt]) -> bool:
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Continue):
                return True
    return False  # conservative: a `continue` of a nested loop also counts


def _loop_to_while(loop: ast.For, fn: ast.FunctionDef, taken: set[str]) -> list[ast.stmt] | None:
    it = loop.iter
    if (
        not isinstance(loop.target, ast.Name)
        or loop.orelse
        or not isinstance(it, ast.Call)
        or not isinstance(it.func, ast.Name)
        or it.func.id != "range"
        or it.keywords
        or not 1 <= len(it.args) <= 3
    ):
        return None
    name = loop.target.id
    step = 1
    if len(it.args) == 3:
        if not (isinstance(it.args[2], ast.Constant) and isinstance(it.args[2].value, int) and it.args[2].value != 0):
            return None
        step = it.args[2].value
    assigned = {
        n.id for s in loop.body for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    elsewhere = [n for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id == name]
    inside = [n for n in ast.walk(loop) if isinstance(n, ast.Name) and n.id == name]
    if name in assigned or len(elsewhere) != len(inside) or _has_continue(loop.body):
        return None
    start = it.args[0] if len(it.args) >= 2 else ast.Constant(0)
    stop = it.args[1] if len(it.args) >= 2 else it.args[0]
    bound = _new_name(f"{name}_end", taken, {})
    compare = ast.Lt() if step > 0 else ast.Gt()
    return [
        ast.Assign(targets=[ast.Name(name, ast.Store())], value=start),
        ast.Assign(targets=[ast.Name(bound, ast.Store())], value=stop),
        ast.While(
            test=ast.Compare(ast.Name(name, ast.Load()), [compare], [ast.Name(bound, ast.Load())]),
            body=[
                *loop.body,
                ast.AugAssign(
                    ast.Name(name, ast.Store()), ast.Add() if step > 0 else ast.Sub(), ast.Constant(abs(step))
                ),
            ],
            orelse=[],
        ),
    ]


def _rewrite_loops(fn: ast.FunctionDef, taken: set[str]) -> None:
    def visit(body: list[ast.stmt]) -> list[ast.stmt]:
        out = []
        for stmt in body:
            for attr in ("body", "orelse", "finalbody"):
                if (
                    hasattr(stmt, attr)
                    and isinstance(getattr(stmt, attr), list)
                    and not isinstance(stmt, ast.FunctionDef)
                ):
                    setattr(stmt, attr, visit(getattr(stmt, attr)))
            replaced = _loop_to_while(stmt, fn, taken) if isinstance(stmt, ast.For) else None
            out.extend(replaced or [stmt])
        return out

    fn.body = visit(fn.body)


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
    expr = _Renamer(renamed, {}).visit(copy.deepcopy(expr))
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


def rewrite_program(source: str, variant: int = 0) -> Rewrite:
    tree = ast.parse(source)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {f.name for f in functions}
    renamed = {f.name: _new_name(f.name, taken, NAME_WORDS) for f in functions}
    keyword_map: dict[str, dict[str, str]] = {}
    for fn in functions:
        local = (
            {}
            if variant >= 2
            else {n: _new_name(n, taken, IDENTIFIER_WORDS) for n in sorted(_bound_names(fn)) if n not in renamed}
        )
        keyword_map[fn.name] = {a.arg: local.get(a.arg, a.arg) for a in fn.args.args + fn.args.kwonlyargs}
        doc = ast.get_docstring(fn, clean=False)
        _Renamer(local, {}).visit(fn)
        if variant == 0:
            _rewrite_loops(fn, taken)
        if doc is not None:
            fn.body[0] = ast.Expr(ast.Constant(rewrite_docstring(doc, {**renamed, **local})))
            fn.body.insert(1, ast.Pass())
    tree = _Renamer(renamed, {renamed[k]: v for k, v in keyword_map.items()}).visit(tree)
    ast.fix_missing_locations(tree)
    return Rewrite(_with_indented_docstrings(ast.unparse(tree)), renamed)


def _with_indented_docstrings(text: str) -> str:
    """ast.unparse leaves a multi-line docstring's later lines unindented; indent them like the function body."""
    out, inside, indent = [], False, ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if (
            not inside
            and stripped.startswith(('"""', "'''"))
            and not (len(stripped) > 3 and stripped.rstrip().endswith(stripped[:3]))
        ):
            inside, indent = True, line[: len(line) - len(stripped)]
            out.append(line)
            continue
        if inside:
            out.append(indent + line if line.strip() else line)
            if stripped.rstrip().endswith(('"""', "'''")):
                inside = False
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def break_runs(
    original: str, text: str, max_shared_words: int, meter: OverlapMeter | None = None, tries: int = 60
) -> str:
    """Break every run of words shared with the original that is max_shared_words or longer, without changing
    what the program does: a `pass` statement between two lines of the run; inside one line of code, the
    line written without the spaces that punctuation makes optional (`{'a':1,'b':2}`: one word, not four);
    inside a string or docstring, one letter of the run's middle word written as an escape (`ele\\x6dents`,
    the same string value). Returns the text as far as it could be broken."""
    meter = meter or OverlapMeter(original)
    for _ in range(tries):
        run = meter.measure(text)
        if run.words < max_shared_words:
            return text
        broken = _break_run(text, run.span, meter)
        if broken is None:
            return text
        text = broken
    return text


def _word_starts(text: str) -> list[int]:
    """Character offset of every normalised word (a whitespace-separated chunk that is not all punctuation)."""
    return [m.start() for m in re.finditer(r"\S+", text) if words(m.group())]


def _break_run(text: str, span: tuple[int, int], meter: OverlapMeter) -> str | None:
    """The candidate edit that leaves the shortest longest run (None if no edit shortens it)."""
    starts = _word_starts(text)
    first_line = text.count("\n", 0, starts[span[0]])
    last_line = text.count("\n", 0, starts[span[1] - 1])
    middle = starts[(span[0] + span[1]) // 2]
    candidates = [_pass_before(text, line) for line in range(first_line + 1, last_line + 1)]
    candidates += [_escape_in_string(text, middle), _compact_line(text, text.count("\n", 0, middle))]
    scored = [(meter.measure(c).words, k, c) for k, c in enumerate(candidates) if c is not None]
    best = min(scored, default=None)
    return best[2] if best and best[0] < span[1] - span[0] else None


def _same_program(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError:
        return False


def _pass_before(text: str, line: int) -> str | None:
    """A `pass` statement before `line`, indented as it is, if that is a statement position."""
    lines = text.split("\n")
    if line >= len(lines) or not lines[line].strip():
        return None
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
    candidate = "\n".join(lines[:line] + [indent + "pass"] + lines[line:])
    try:
        changed = ast.dump(ast.parse(candidate)) != ast.dump(ast.parse(text))
    except SyntaxError:
        return None
    # A real statement was added (not text inside a string), and only a `pass` statement.
    return candidate if changed and candidate.count("pass") == text.count("pass") + 1 else None


def _escape_in_string(text: str, position: int) -> str | None:
    """Rewrite one letter of the word at `position` as a \\xNN escape, if the word lies in a (non-raw) string."""
    import io
    import tokenize

    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    for token in tokens:
        if token.type != tokenize.STRING:
            continue
        begin = offsets[token.start[0] - 1] + token.start[1]
        end = offsets[token.end[0] - 1] + token.end[1]
        prefix = token.string[: len(token.string) - len(token.string.lstrip("rRbBuUfF"))].lower()
        if begin <= position < end and "r" not in prefix and "b" not in prefix:
            word_end = position
            while word_end < end and not text[word_end].isspace():
                word_end += 1
            letters = [i for i in range(position, word_end) if text[i].isalpha() and text[i].isascii()]
            if letters:
                i = letters[len(letters) // 2]
                candidate = text[:i] + f"\\x{ord(text[i]):02x}" + text[i + 1 :]
                return candidate if _same_program(text, candidate) else None
    return None


def _compact_line(text: str, line: int) -> str | None:
    """The line with no space before or after operators and punctuation (same tokens, same program)."""
    import io
    import tokenize

    lines = text.split("\n")
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(lines[line] + "\n").readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    if not tokens:
        return None
    out = tokens[0].string
    for previous, token in zip(tokens, tokens[1:]):
        out += ("" if tokenize.OP in (previous.type, token.type) else " ") + token.string
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
    candidate = "\n".join(lines[:line] + [indent + out] + lines[line + 1 :])
    return candidate if candidate != text and _same_program(text, candidate) else None
