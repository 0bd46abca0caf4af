"""A batch of texts normalised as `rephraser.overlap.words` does, as one byte string: no Python call per word.

    data = normalised_bytes(texts)          # each row's words in UTF-8, gaps of 0x20, rows ended by 0xFF, padded
    spans = word_spans(data)                # WordSpans: byte start and end of every word; rows_of(words)

overlap.words is lm-eval's janitor: ASCII letters lowered, ASCII punctuation deleted, then str.split() (split on
Unicode whitespace). Here the rows are encoded to UTF-8 and joined with 0xFF (a byte UTF-8 never uses), then
bytes.translate lowers and deletes (those characters are ASCII, and UTF-8 never uses an ASCII byte inside a
multi-byte character) and turns ASCII whitespace into 0x20; multi-byte whitespace, found by its encodings with
numpy, becomes one 0x20 per byte. The tables derive from overlap.normalise and str.isspace of the running Python,
so they follow both; tests compare the words with overlap.words over every code point. Lone surrogates (from
JSON escapes) are kept ("surrogatepass").
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rephraser.overlap import normalise

GAP, ROW_END = 0x20, 0xFF
PAD = 8  # gap bytes after the last row: 8 bytes can be read from any word's start (ngram_hash)


@dataclass(frozen=True)
class _Tables:
    translate: bytes  # bytes.translate's table: ASCII letters lowered, ASCII whitespace -> GAP
    delete: bytes  # the bytes it deletes: ASCII punctuation
    space_lead: np.ndarray  # bool per byte value: first byte of a multi-byte whitespace character
    space_keys: dict[int, np.ndarray]  # encoded length -> the big-endian integers of those encodings


@functools.cache
def _tables() -> _Tables:
    """Built once per process (~0.1 s: every code point is asked whether it is whitespace)."""
    table, delete = bytearray(range(256)), bytearray()
    for b in range(128):
        kept = normalise(chr(b))  # '' for whitespace and deleted punctuation, else the lowered character
        if chr(b).isspace():
            table[b] = GAP
        elif not kept:
            delete.append(b)
        else:
            table[b] = ord(kept)
    space_lead, keys = np.zeros(256, bool), {}
    spaces = (c.encode("utf-8") for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    for encoded in (e for e in spaces if len(e) > 1):
        space_lead[encoded[0]] = True
        keys.setdefault(len(encoded), []).append(int.from_bytes(encoded, "big"))
    return _Tables(bytes(table), bytes(delete), space_lead, {k: np.array(v, np.int64) for k, v in keys.items()})


def normalised_bytes(texts: Sequence[str]) -> bytes:
    """The words of every text (as overlap.words gives them) in UTF-8, separated by GAP bytes (one or more),
    each row followed by ROW_END except the last, then PAD gap bytes (so 8 bytes can be read at any word)."""
    tables = _tables()
    rows = [t.encode("utf-8", "surrogatepass") for t in texts]
    data = (b"\xff".join(rows) + b" " * PAD).translate(tables.translate, tables.delete)
    raw = np.frombuffer(data, np.uint8)
    leads = np.flatnonzero(raw >= 0x80)  # multi-byte characters: few in most text
    leads = leads[tables.space_lead[raw[leads]]]
    if not len(leads):
        return data
    out = raw.copy()
    for length, keys in tables.space_keys.items():  # a lead byte is always followed by its continuation bytes
        key = np.zeros(len(leads), np.int64)
        for i in range(length):
            key = (key << 8) | raw[np.minimum(leads + i, len(raw) - 1)]
        spaces = leads[np.isin(key, keys)]
        for i in range(length):  # the character becomes `length` gap bytes: a gap may be any length
            out[spaces + i] = GAP
    return out.tobytes()


@dataclass
class WordSpans:
    starts: np.ndarray  # byte offset of each word (int64; int32 in a HashedNgrams' test spans)
    ends: np.ndarray  # exclusive end of each word
    row_ends: np.ndarray  # byte offset of each ROW_END
    _rows: np.ndarray | None = None  # the row of every word, once many were asked about

    def rows_of(self, words: np.ndarray) -> np.ndarray:
        """The row of each of these words: a binary search for a few, a lookup in a table of all for many."""
        if self._rows is None and len(words) * 8 < len(self.starts):
            return np.searchsorted(self.row_ends, self.starts[words])
        if self._rows is None:
            per_row = np.diff(np.r_[0, np.searchsorted(self.starts, self.row_ends), len(self.starts)])
            self._rows = np.repeat(np.arange(len(self.row_ends) + 1), per_row)
        return self._rows[words]


def word_spans(data: bytes) -> WordSpans:
    """Where the words of normalised_bytes(texts) lie."""
    clean = np.frombuffer(data, np.uint8)
    gap = np.ones(len(clean) + 2, bool)  # gap[i + 1]: byte i separates words; both ends count as gaps
    np.equal(clean, GAP, out=gap[1:-1])
    row_ends = np.flatnonzero(clean == ROW_END)
    gap[row_ends + 1] = True
    edges = np.flatnonzero(gap[1:] != gap[:-1])  # alternately a word's first byte and its end
    return WordSpans(edges[0::2].copy(), edges[1::2].copy(), row_ends)  # contiguous: faster to index with
