"""Breaking the runs of words a rewrite still shares with its original, without changing the program.

    text = break_runs(original, rewritten, max_shared_words=10)

Edits (each leaves the program's AST as it was, but for one added `pass` statement): a `pass` statement
between two lines of the run; inside one line of code, the line written without the spaces that punctuation
makes optional; inside a string or docstring, one character of the run's middle word written as an escape.
"""

from __future__ import annotations

import ast
import re

from rephraser.overlap import OverlapMeter, words


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
    """A `pass` statement before `line`, indented as it is, if that is a statement position: the new program
    is the old one plus that one statement (not a line of text inside a string) and it does not come before a
    docstring (which would then be a docstring no more)."""
    lines = text.split("\n")
    if line >= len(lines) or not lines[line].strip():
        return None
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
    candidate = "\n".join(lines[:line] + [indent + "pass"] + lines[line:])
    try:
        before, after = ast.parse(text), ast.parse(candidate)
    except SyntaxError:
        return None
    for node in ast.walk(after):
        for _field, value in ast.iter_fields(node):
            if not isinstance(value, list):
                continue
            for k, stmt in enumerate(value):
                if isinstance(stmt, ast.Pass) and stmt.lineno == line + 1:
                    if k == 0 and len(value) > 1 and _is_docstring(value[1]) and isinstance(node, DOCUMENTED):
                        return None
                    del value[k]
                    return candidate if ast.dump(after) == ast.dump(before) else None
    return None


DOCUMENTED = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


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
            letters = [i for i in range(position, word_end) if text[i].isalnum() and text[i].isascii()]
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
