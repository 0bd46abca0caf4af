"""The stages of `rephraser detect scan` over training rows: each takes a batch, returns a typed result that merges.

    batch = Batch(rows=np.arange(4096) + start, texts=[...])     # row ids (stream positions) and their texts
    first = FirstPassStages(ngrams=NgramStage(tests), nearest=EmbeddingStage(...), every_row=None)
    part = first(batch)                                          # FirstPass: the batch's n-gram tally, top k
    total = total.merge(part)                                    # in any order, from any split into batches
    texts = FetchStage(wanted_rows)(batch)                       # RowTexts: the second pass, the wanted rows' texts

The shape is datatrove's (pipeline/decont/n_grams.py): a typed config and one small class per stage, so a stage
runs the same in this process (engine.LocalEngine) and on a cluster (a Ray Data engine runs `first` in
map_batches, keeps each batch's result, which is bounded by the test set, not by the corpus, and merges them).
Every merge is order-independent: n-gram tallies keep counts and the smallest row ids (ngrams.NgramTally),
top-k results a total order (embed.Nearest: cosine, then row id), row texts a union by id. A stage holds no
per-row state between batches; what is cached (the embedding cache) is keyed by row position and is the local
engine's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rephraser.detect.embed import Nearest
from rephraser.detect.ngrams import HashedNgrams, NgramTally
from rephraser.errors import ConfigError

NS = (10, 13)  # the study's 10-word test and GPT-3 / lm-eval's 13-gram decontamination


@dataclass(frozen=True)
class Batch:
    """Consecutive or scattered training rows: their ids (0-based stream positions) and texts."""

    rows: np.ndarray  # int64
    texts: Sequence[str]

    @classmethod
    def at(cls, start: int, texts: Sequence[str]) -> Batch:
        return cls(np.arange(start, start + len(texts), dtype=np.int64), texts)


class NgramStage:
    """10- and 13-word overlap of every row with every test item (hashed, exact: rephraser.detect.ngrams)."""

    def __init__(self, tests: Sequence[str], ns: Sequence[int] = NS):
        self.index, self.n_tests, self.ns = HashedNgrams(tests, ns), len(tests), tuple(ns)

    def empty(self) -> NgramTally:
        return NgramTally(self.n_tests, self.ns)

    def __call__(self, batch: Batch) -> NgramTally:
        tally = self.empty()
        tally.add(self.index.match_batch(batch.texts), row_ids=batch.rows)
        return tally


class EmbeddingStage:
    """Cosine of every row with every test item; the k nearest rows per test item. `vectors(batch)` gives the
    rows' vectors (encoded, or read from a cache by the local engine)."""

    def __init__(self, queries: np.ndarray, k: int, vectors):
        self.queries, self.k, self.vectors = queries, k, vectors

    def empty(self) -> Nearest:
        return Nearest.empty(len(self.queries), self.k)

    def __call__(self, batch: Batch) -> Nearest:
        return Nearest.search(self.queries, self.vectors(batch), batch.rows, self.k)


@dataclass(frozen=True)
class EveryRow:
    """Every row's id and text (--method llm judges every test x row pair: small sets only)."""

    parts: tuple[tuple[np.ndarray, tuple[str, ...]], ...] = ()
    limit: int | None = None  # most rows allowed (max_llm_pairs / test items)

    @property
    def count(self) -> int:
        return sum(len(rows) for rows, _ in self.parts)

    def merge(self, other: EveryRow) -> EveryRow:
        merged = EveryRow(self.parts + other.parts, self.limit)
        if merged.limit is not None and merged.count > merged.limit:
            raise ConfigError(
                f"method: llm judges every test x train pair: more than --max-llm-pairs allows here (over "
                f"{merged.limit} rows); use --method pipeline (the judge on the embedding top-k)"
            )
        return merged

    def remap(self, ids) -> EveryRow:
        return EveryRow(tuple((np.asarray(ids(rows), np.int64), texts) for rows, texts in self.parts), self.limit)

    def texts(self) -> dict[int, str]:
        """Row id -> text, in row order."""
        pairs = sorted((int(r), t) for rows, texts in self.parts for r, t in zip(rows.tolist(), texts))
        return dict(pairs)


class EveryRowStage:
    def __init__(self, limit: int):
        self.limit = limit

    def empty(self) -> EveryRow:
        return EveryRow((), self.limit)

    def __call__(self, batch: Batch) -> EveryRow:
        return self.empty().merge(EveryRow(((np.asarray(batch.rows), tuple(batch.texts)),), self.limit))


@dataclass
class FirstPass:
    """What the first pass keeps: per test item and n its n-gram rows, and (embedding, pipeline) its top k or
    (llm) every row. Bounded by the test set, except `every_row` (bounded by --max-llm-pairs)."""

    ngrams: NgramTally
    nearest: Nearest | None = None
    every_row: EveryRow | None = None

    def merge(self, other: FirstPass) -> FirstPass:
        def both(a, b):
            return None if a is None else a.merge(b)

        return FirstPass(
            self.ngrams.merge(other.ngrams),
            both(self.nearest, other.nearest),
            both(self.every_row, other.every_row),
        )

    def remap(self, ids) -> FirstPass:
        """Every row id r replaced by ids(r) (increasing): see NgramTally.remap."""
        return FirstPass(
            self.ngrams.remap(ids),
            None if self.nearest is None else self.nearest.remap(ids),
            None if self.every_row is None else self.every_row.remap(ids),
        )


@dataclass
class FirstPassStages:
    """The first pass's stages, run on one batch; its result merges with other batches' (FirstPass.merge)."""

    ngrams: NgramStage
    nearest: EmbeddingStage | None = None
    every_row: EveryRowStage | None = None

    def empty(self) -> FirstPass:
        return FirstPass(
            self.ngrams.empty(),
            None if self.nearest is None else self.nearest.empty(),
            None if self.every_row is None else self.every_row.empty(),
        )

    def __call__(self, batch: Batch) -> FirstPass:
        return FirstPass(
            self.ngrams(batch),
            None if self.nearest is None else self.nearest(batch),
            None if self.every_row is None else self.every_row(batch),
        )


@dataclass(frozen=True)
class RowTexts:
    """The texts of some rows by id (the second pass: the rows that are some test item's neighbour)."""

    texts: dict[int, str] = field(default_factory=dict)

    def merge(self, other: RowTexts) -> RowTexts:
        return RowTexts({**self.texts, **other.texts})


class FetchStage:
    def __init__(self, wanted):
        self.wanted = frozenset(int(r) for r in wanted)
        self.last = max(self.wanted, default=-1)  # no wanted row lies beyond it: the local engine stops there

    def empty(self) -> RowTexts:
        return RowTexts()

    def __call__(self, batch: Batch) -> RowTexts:
        return RowTexts({r: t for r, t in zip(batch.rows.tolist(), batch.texts) if r in self.wanted})
