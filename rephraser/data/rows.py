"""Read training rows from `.jsonl` / `.jsonl.gz`, streaming: each JSON line becomes a (prompt, solution) pair.

    reader = RowReader("rephrase_gsm8k.jsonl")
    for row in reader:            # Row(line=1, prompt="", solution="Question: ...")
        ...
    reader.sha256, reader.blank_lines

Row formats, checked in this order (the first whose key is present decides):
  {"messages": [{"role", "content"}, ...]}   chat rows, rendered with the tokenizer's chat template (data/chat.py)
  a benchmark's own rows            {"prompt", "canonical_solution"} (HumanEval), {"question", "answer"} (GSM-8K:
                                     the evaluated prompt, solution " <answer>"): rephraser.benchmarks.row_formats
  {"prompt", "completion"}           prompt/completion pairs (e.g. from `rephraser rephrase`)
  {"text"}                           one text, empty prompt (the LMSYS rephrased files)
A bad line (invalid JSON or UTF-8, not an object, a missing or non-string field) raises `InputError`
naming the file, the 1-based line and the field.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rephraser.errors import InputError

ROW_FORMATS = "messages | prompt+canonical_solution | prompt+completion | question+answer | text"


@dataclass(frozen=True)
class Row:
    line: int
    prompt: str
    solution: str
    messages: tuple = ()  # chat rows: ({"role", "content"}, ...); prompt and solution are then empty

    @property
    def is_empty(self) -> bool:
        """The LMSYS files keep empty placeholders where a rephrase was filtered out."""
        return not (self.prompt.strip() or self.solution.strip() or self.messages)


class _HashingReader(io.RawIOBase):
    """Raw stream that hashes every byte read, so the file's sha256 costs no second pass over it."""

    def __init__(self, raw):
        self.raw, self.hash = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = self.raw.readinto(buf)
        self.hash.update(memoryview(buf)[:n])
        return n


def _string_field(path, line: int, obj: dict, key: str) -> str:
    if key not in obj:
        raise InputError(path, f"missing (row keys: {sorted(obj)})", line, key)
    value = obj[key]
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {type(value).__name__}", line, key)
    check_unicode(path, line, key, value)
    return value


def check_unicode(path, line: int, key: str, value: str) -> None:
    """JSON's \\ud800 escapes decode to lone surrogates, which no tokenizer (or UTF-8 file) can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(
            path, f"lone surrogate {value[e.start]!r} at character {e.start} (not valid Unicode text)", line, key
        ) from None


def parse_row(path, line: int, raw: bytes) -> Row:
    """One JSONL line (bytes, newline included or not) -> Row, or InputError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            path, f"not valid UTF-8 (byte {e.start} of the line: {raw[e.start : e.start + 1]!r})", line
        ) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON: {e.msg} at column {e.colno}", line) from None
    if not isinstance(obj, dict):
        raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line)
    return _row_from(path, line, obj)


def _row_from(path, line: int, obj: dict) -> Row:
    def get(key: str) -> str:
        return _string_field(path, line, obj, key)

    if "messages" in obj:
        return Row(line, "", "", _messages(path, line, obj["messages"]))
    for key, fields, row in _benchmark_rows():
        if key in obj:  # the field that identifies a benchmark's format: canonical_solution, question
            return Row(line, *row({name: get(name) for name in fields}))
    if "completion" in obj:
        return Row(line, get("prompt"), get("completion"))
    if "text" in obj:
        return Row(line, "", get("text"))
    if "prompt" in obj:
        raise InputError(
            path, "missing: a 'prompt' row needs 'canonical_solution' or 'completion'", line, "canonical_solution"
        )
    raise InputError(path, f"no known row format (expected {ROW_FORMATS}; got keys {sorted(obj)})", line)


ROLES = ("system", "user", "assistant", "tool")


@functools.cache
def _benchmark_rows():
    from rephraser.benchmarks import row_formats

    return row_formats()


def _messages(path, line: int, messages) -> tuple:
    if not isinstance(messages, list) or not messages:
        raise InputError(path, 'expected a non-empty list of {"role", "content"} objects', line, "messages")
    out = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(
                path, f'message {k}: expected {{"role": one of {list(ROLES)}, "content": a string}}', line, "messages"
            )
        check_unicode(path, line, f"messages[{k}].content", m["content"])
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise InputError(path, "no assistant message: nothing to train on", line, "messages")
    return tuple(out)


class RowReader:
    """Iterate rows of a .jsonl or .jsonl.gz file once; afterwards `sha256` (of the file as stored),
    `lines` and `blank_lines` are set."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.sha256: str | None = None
        self.blank_lines = 0
        self.lines = 0
        if not self.path.is_file():
            raise InputError(self.path, "no such file")

    def __iter__(self) -> Iterator[Row]:
        with open(self.path, "rb") as fh:
            hashing = _HashingReader(fh)
            buffered = io.BufferedReader(hashing, 1 << 20)
            lines = gzip.GzipFile(fileobj=buffered) if self.path.suffix == ".gz" else buffered
            line = 0
            try:
                for line, raw in enumerate(lines, start=1):
                    if not raw.strip():
                        self.blank_lines += 1
                        continue
                    yield parse_row(self.path, line, raw)
            except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip
                raise InputError(self.path, f"cannot read after line {line}: {e}") from None
            self.lines = line
            while buffered.read(1 << 20):  # hash any bytes the reader did not need (gzip trailer)
                pass
            self.sha256 = hashing.hash.hexdigest()
