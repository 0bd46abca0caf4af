"""Hashed word n-grams: the n-gram detector for large training sets; exact, vectorised, cheap to ship to workers.

    index = HashedNgrams(test_texts, ns=(10, 13))
    found = index.match_batch(texts)        # {n: Matches}: sorted unique (row position in batch, test id) pairs
    found[10].row_sets(len(texts))          # per row: the set NgramIndex(test_texts, 10).matches(row) gives
    tally = NgramTally(len(test_texts))     # what `rephraser detect scan` keeps per test item and n:
    tally.add(found, start=first_row_id)    #   counts[n] (rows matching it), first_rows(n) (its first 5 rows)
    tally = tally.merge(other)              # shards combine in any order: the same as one pass in order

The measure is rephraser.overlap's (NgramIndex: a row and a test item match at n when they share a run of n or
more words after lm-eval's normalisation); this module computes it faster. A batch of texts becomes one byte
string of normalised words (ngram_bytes), every word a 64-bit hash and every window of n words a 64-bit hash
(ngram_hash), all in numpy; window hashes are looked up in a table of the test items' hashes indexed by their
top bits (sorted hashes and searchsorted where two share a slot). The smallest n is looked up at every window;
a larger n only at the windows the smallest found (a test item's 13-gram begins with one of its 10-grams), so
a row that matches nothing costs one lookup per word. No Python loop runs per word or n-gram.

Exact, not probabilistic: equal n-grams always hash equally, so nothing is missed; every (row, test) pair a hash
finds is verified by comparing the row's n-gram with the test item's, as normalised bytes (equal bytes, or equal
words when the gaps differ), so a hash collision never flags a row. One comparison per matched pair unless a
collision made it fail. Tests check the result against overlap.NgramIndex and OverlapMeter on every pair.

Pickled (for Ray workers), an index is numpy arrays and one bytes object: per n the sorted hashes and, per hash,
the test windows that own it (hence the test items); the test items' normalised bytes and word offsets for
verifying; lookup tables are rebuilt on arrival. 2.3 MB for GSM-8K's 1319 test items (the two NgramIndex dicts
it replaces pickle to 6.5 MB). Written by hand: no maintained library finds exact shared word n-grams over
numpy batches (datasketch's MinHash estimates similarity, it does not find shared runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rephraser.detect.ngram_bytes import WordSpans, normalised_bytes, word_spans
from rephraser.detect.ngram_hash import Hasher, Polynomials, ranks

MATCHES_KEPT = 5  # first rows kept per test item, as rephraser.detect.scan keeps them
_NO_ROW = np.iinfo(np.int64).max  # an empty slot among a tally's first rows
_NONE, _SEVERAL = -1, -2  # a lookup slot with no hash, or with more than one
SLICE_CHARS = 1_000_000  # a batch is matched in pieces of about this many characters (see _slices)


@dataclass(frozen=True)
class Matches:
    """The (row, test item) pairs of one batch at one n that share an n-gram: sorted by row then test, unique."""

    rows: np.ndarray  # int64 positions in the batch
    tests: np.ndarray  # int64 test item ids
    rejected: int = 0  # (row, test) pairs a hash proposed that the verification refused: hash collisions

    def row_sets(self, n_rows: int) -> list[set[int]]:
        """Per batch row, the set of test items it matches (what NgramIndex.matches returns for that row)."""
        out: list[set[int]] = [set() for _ in range(n_rows)]
        for row, test in zip(self.rows.tolist(), self.tests.tolist()):
            out[row].add(test)
        return out


@dataclass(frozen=True)
class _Batch:
    data: bytes  # ngram_bytes.normalised_bytes of the texts
    spans: WordSpans
    windows: Polynomials  # over the word hashes: windows.of(first, n) is a window's hash


class _Table:
    """The test items' n-grams at one n: sorted unique hashes, the test windows having each, and a direct
    lookup by the top bits of a hash (derived, so rebuilt rather than pickled)."""

    def __init__(self, first: np.ndarray, hashes: np.ndarray):
        order = np.argsort(hashes, kind="stable")
        self.hashes, start = np.unique(hashes[order], return_index=True)  # uint64, sorted
        self.owner_ptr = np.r_[start, len(order)].astype(np.int32)  # CSR offsets into owner_word
        self.owner_word = first[order].astype(np.int32)  # first word (among all test items' words) of each window
        self._lookup()

    def __getstate__(self) -> dict:
        return {k: self.__dict__[k] for k in ("hashes", "owner_ptr", "owner_word")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lookup()

    def _lookup(self) -> None:
        """slots[top bits of a hash]: the index of the one hash with those top bits, _NONE or _SEVERAL."""
        self.bits = int(min(26, max(8, np.ceil(np.log2(max(len(self.hashes), 1))) + 3)))  # <= 1/8 of slots used
        top = (self.hashes >> np.uint64(64 - self.bits)).astype(np.int64)
        self.slots = np.full(1 << self.bits, _NONE, np.int32)
        self.slots[top] = np.arange(len(top), dtype=np.int32)
        self.slots[top[1:][top[1:] == top[:-1]]] = _SEVERAL  # hashes are sorted: equal top bits are adjacent

    def find(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in needles, index in hashes) of the needles that are among the hashes."""
        slot = self.slots.take((needles >> np.uint64(64 - self.bits)).view(np.int64))  # < 2^26: same as int
        some = np.flatnonzero(slot != _NONE)
        one = some[slot[some] >= 0]
        one = one[self.hashes[slot[one]] == needles[one]]
        several = some[slot[some] == _SEVERAL]
        at = np.minimum(np.searchsorted(self.hashes, needles[several]), len(self.hashes) - 1)
        found = self.hashes[at] == needles[several]
        return np.r_[one, several[found]], np.r_[slot[one].astype(np.int64), at[found]]


class HashedNgrams:
    """The word n-grams (each n in `ns`) of a set of test texts; `match_batch` gives the (row, test) pairs of a
    batch of training texts that share one, exactly as overlap.NgramIndex(tests, n).matches does row by row.
    `hash_bits` below 64 keeps only that many bits of each n-gram hash: for tests that force collisions."""

    def __init__(self, tests: Sequence[str], ns: Sequence[int] = (10, 13), hash_bits: int = 64):
        if not ns or any(int(n) < 1 for n in ns):
            raise ValueError(f"ns: n-gram sizes must be positive integers, got {list(ns)}")
        if not 1 <= hash_bits <= 64:
            raise ValueError(f"hash_bits: must be in 1..64, got {hash_bits}")
        self.ns, self.hash_bits, self.n_tests = tuple(int(n) for n in ns), hash_bits, len(tests)
        self._hasher = Hasher()
        batch = self._batch(tests)
        self.tables = {n: self._table(batch, n) for n in self.ns}
        spans = batch.spans  # kept for verifying, as int32 (half the size to ship)
        self.test_data = batch.data
        self.test_spans = WordSpans(*(a.astype(np.int32) for a in (spans.starts, spans.ends, spans.row_ends)))
        self._derived()

    def _derived(self) -> None:
        spans = self.test_spans
        self.test_of_word = np.searchsorted(spans.row_ends, spans.starts)  # the test item of every test word

    def __getstate__(self) -> dict:  # the power tables and test_of_word are rebuilt on arrival
        return {k: v for k, v in self.__dict__.items() if k not in ("_hasher", "test_of_word")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _hasher=Hasher())
        self._derived()

    def match_batch(self, texts: Sequence[str]) -> dict[int, Matches]:
        """Per n: the verified (row position, test id) pairs of `texts` sharing an n-gram with a test item.
        The smallest n looks at every window; a larger n only where the smallest found one (an n-gram of a
        test item begins with a smaller n-gram of it), so a clean row costs one lookup per word."""
        parts = []
        for start, stop in _slices(texts):
            batch = self._batch(texts[start:stop])
            found, windows = {}, None
            for n in sorted(self.ns):
                window, rows, owner, windows = self._candidates(batch, n, windows)
                found[n] = self._verify(batch, n, window, rows, owner)
            parts.append((start, found))
        if len(parts) == 1:
            return {n: parts[0][1][n] for n in self.ns}
        return {n: _concatenated([(start, found[n]) for start, found in parts]) for n in self.ns}

    def _batch(self, texts: Sequence[str]) -> _Batch:
        data = normalised_bytes(texts)
        spans = word_spans(data)
        return _Batch(data, spans, self._hasher.windows(self._hasher.words(data, spans.starts, spans.ends)))

    def _hashes(self, batch: _Batch, n: int, first: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
        """(first word, hash) of the windows of n words starting at `first` (None: at every word, in order),
        including windows that cross a row's end: callers drop those (few: only among what a lookup found)."""
        if first is None:
            hashes = batch.windows.every(n)
        else:
            first = first[first + n <= len(batch.spans.starts)]
            hashes = batch.windows.of(first, n)
        if self.hash_bits < 64:
            hashes >>= np.uint64(64 - self.hash_bits)
        return first, hashes

    def _inside_rows(self, spans: WordSpans, first: np.ndarray, n: int) -> np.ndarray:
        return spans.rows_of(first) == spans.rows_of(first + n - 1)

    def _table(self, batch: _Batch, n: int) -> _Table:
        _, hashes = self._hashes(batch, n, None)
        first = np.arange(len(hashes), dtype=np.int64)
        inside = self._inside_rows(batch.spans, first, n)
        return _Table(first[inside], hashes[inside])

    def _candidates(self, batch: _Batch, n: int, first: np.ndarray | None):
        """(first word of a row window, its row, first word of a test window) for every two windows of equal
        hash inside a row, and the row windows among them (each once: a window has one hash)."""
        table = self.tables[n]
        first, hashes = self._hashes(batch, n, first)
        if not len(table.hashes):
            return (np.zeros(0, np.int64),) * 4
        hit, index = table.find(hashes)
        hit = hit if first is None else first[hit]
        rows = batch.spans.rows_of(hit)
        inside = rows == batch.spans.rows_of(hit + n - 1)
        hit, rows, index = hit[inside], rows[inside], index[inside]
        sizes = table.owner_ptr[index + 1] - table.owner_ptr[index]
        if (sizes == 1).all():  # each of these n-grams is in one test item once (the usual case)
            return hit, rows, table.owner_word[table.owner_ptr[index]], hit
        owners = table.owner_word[np.repeat(table.owner_ptr[index], sizes) + ranks(sizes)]
        return np.repeat(hit, sizes), np.repeat(rows, sizes), owners, hit

    def _verify(self, batch: _Batch, n: int, window: np.ndarray, rows: np.ndarray, owner: np.ndarray) -> Matches:
        """The (row, test) pairs whose n-grams really are equal. One candidate of each pair decides unless a
        hash collision made it fail; then the pair's other candidates are tried."""
        pair = rows * max(self.n_tests, 1) + self.test_of_word[owner]
        runs = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]][: len(pair)])  # a copied run: one pair
        pairs, first = np.unique(pair[runs], return_index=True)
        pick = runs[first]
        same = self._same(batch, n, window[pick], owner[pick])
        for p in np.flatnonzero(~same).tolist():
            others = np.flatnonzero(pair == pairs[p])
            same[p] = self._same(batch, n, window[others], owner[others]).any()
        rows, tests = np.divmod(pairs[same], max(self.n_tests, 1))
        return Matches(rows.astype(np.int64), tests.astype(np.int64), int((~same).sum()))

    def _same(self, batch: _Batch, n: int, window: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Whether each row window's words equal its test window's, compared as normalised bytes: equal spans,
        or equal words when the gaps between them differ (a word holds no gap byte)."""
        row, test, rs, ts = batch.data, self.test_data, batch.spans, self.test_spans
        bounds = (rs.starts[window], rs.ends[window + n - 1], ts.starts[owner], ts.ends[owner + n - 1])
        same = []
        for a, b, c, d in zip(*(x.tolist() for x in bounds)):
            x, y = row[a:b], test[c:d]
            same.append(x == y or x.split() == y.split())
        return np.array(same, bool)


class NgramTally:
    """Per test item and n: how many training rows match it and its first `kept` rows (the smallest row ids,
    which is stream order): what `rephraser detect scan`'s first pass keeps, from any split into batches or
    shards, added and merged in any order."""

    def __init__(self, n_tests: int, ns: Sequence[int] = (10, 13), kept: int = MATCHES_KEPT):
        self.n_tests, self.ns, self.kept = n_tests, tuple(ns), kept
        self.counts = {n: np.zeros(n_tests, np.int64) for n in self.ns}
        self._first = {n: np.full((n_tests, kept), _NO_ROW, np.int64) for n in self.ns}

    def add(self, found: dict[int, Matches], start: int = 0, row_ids: np.ndarray | None = None) -> None:
        """Count a batch's matches; a row's id is `start` + its position, or row_ids[position] when given."""
        for n in self.ns:
            m = found[n]
            ids = m.rows + start if row_ids is None else np.asarray(row_ids, np.int64)[m.rows]
            self.counts[n] += np.bincount(m.tests, minlength=self.n_tests)
            self._first[n] = _smallest(self._first[n], _first_per_test(ids, m.tests, self.n_tests, self.kept))

    def merge(self, other: NgramTally) -> NgramTally:
        """This tally and another over other rows, combined (in either order: the same result)."""
        if (other.n_tests, other.ns, other.kept) != (self.n_tests, self.ns, self.kept):
            raise ValueError("merge: tallies of different test sets, n-gram sizes or kept rows")
        out = NgramTally(self.n_tests, self.ns, self.kept)
        for n in self.ns:
            out.counts[n] = self.counts[n] + other.counts[n]
            out._first[n] = _smallest(self._first[n], other._first[n])
        return out

    def __getstate__(self) -> dict:
        """Sparse: only the test items a batch matched (a Ray chunk's tally ships to the driver; dense arrays for
        GSM-8K's 1319 items are 127 KB a chunk, mostly empty)."""
        state = {"n_tests": self.n_tests, "ns": self.ns, "kept": self.kept, "counts": {}, "first": {}}
        for n in self.ns:
            hit = np.flatnonzero(self.counts[n])
            state["counts"][n] = (hit, self.counts[n][hit])
            first = np.flatnonzero(self._first[n][:, 0] != _NO_ROW)
            state["first"][n] = (first, self._first[n][first])
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["n_tests"], state["ns"], state["kept"])
        for n in self.ns:
            hit, values = state["counts"][n]
            self.counts[n][hit] = values
            first, rows = state["first"][n]
            self._first[n][first] = rows

    def remap(self, ids) -> NgramTally:
        """The tally with every row id r replaced by ids(r) (a vectorised, increasing map: order is kept). A Ray
        engine numbers rows (shard, position) until it knows how many rows the earlier shards hold."""
        out = NgramTally(self.n_tests, self.ns, self.kept)
        for n in self.ns:
            out.counts[n] = self.counts[n].copy()
            first = self._first[n]
            out._first[n] = np.where(first == _NO_ROW, _NO_ROW, ids(np.where(first == _NO_ROW, 0, first)))
        return out

    def first_rows(self, n: int) -> list[list[int]]:
        """Per test item, its first matching row ids (at most `kept`), in increasing order."""
        return [[r for r in row if r != _NO_ROW] for row in self._first[n].tolist()]


def _slices(texts: Sequence[str]) -> list[tuple[int, int]]:
    """[start, stop) pieces of about SLICE_CHARS characters: the temporaries (a few dozen bytes per word) stay
    bounded whatever batch a caller (a Ray worker) passes; speed is the same from 0.25 to 2 M characters."""
    if sum(map(len, texts)) <= SLICE_CHARS:
        return [(0, len(texts))]
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
    cuts = np.searchsorted(ends, np.arange(SLICE_CHARS, ends[-1], SLICE_CHARS), side="right")
    bounds = [0, *sorted(set(cuts.tolist()) - {0, len(texts)}), len(texts)]
    return list(zip(bounds[:-1], bounds[1:]))


def _concatenated(parts: list[tuple[int, Matches]]) -> Matches:
    rows = np.concatenate([m.rows + start for start, m in parts])
    tests = np.concatenate([m.tests for _, m in parts])
    return Matches(rows, tests, sum(m.rejected for _, m in parts))


def _first_per_test(ids: np.ndarray, tests: np.ndarray, n_tests: int, kept: int) -> np.ndarray:
    """[n_tests, kept]: each test item's smallest row ids among the pairs, padded with _NO_ROW."""
    out = np.full((n_tests, kept), _NO_ROW, np.int64)
    order = np.lexsort((ids, tests))
    ids, tests = ids[order], tests[order]
    rank = np.arange(len(tests)) - np.searchsorted(tests, tests)  # position within its test item's group
    keep = rank < kept
    out[tests[keep], rank[keep]] = ids[keep]
    return out


def _smallest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sort(np.concatenate([a, b], axis=1), axis=1)[:, : a.shape[1]]
