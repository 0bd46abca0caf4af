"""The embedding cache: training rows' vectors on disk, reused only for the same model content and the same data.

    key = model_key(embedder)                          # None: the model cannot be identified (no cache)
    cache = CachedEmbeddings.open(embedder, source.fingerprint(), cache_dir() / "embeddings", log)
    vectors = cache.vectors(first_row, texts)          # read when a complete cache exists, else encoded and kept
    cache.finish()                                     # published whole (write, then rename)

The key is what determines the vectors: every file of the model (sha256 of its content, so a model re-saved at
the same path, an upgraded packaged model or another hub commit is another key), its max_seq_length, its module
stack (transformer, pooling, normalisation layers, each module's own config), whether encode normalises, the
sentence-transformers and transformers versions, and the data (training.TrainingSource.fingerprint: the file's
content, a dataset's resolved commit). When the model or the data cannot be identified, nothing is cached and
the log says why. A hub model is identified by the files of its local snapshot (after loading, it is there).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from rephraser.digest import sha256_file


def _model_folder(embedder) -> Path | None:
    folder = Path(embedder.path)
    if folder.is_dir():
        return folder
    try:  # a hub id: the snapshot sentence-transformers loaded
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(embedder.path, local_files_only=True))
    except Exception:  # not in the local hub cache in that layout: cannot be identified
        return None


def _modules(model) -> list:
    out = []
    for module in model:
        config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
        out.append([f"{type(module).__module__}.{type(module).__name__}", json.loads(json.dumps(config, default=str))])
    return out


def model_key(embedder) -> dict | None:
    """What determines the vectors the embedder makes (None: its files cannot be found, so no cache)."""
    import sentence_transformers
    import transformers

    folder = _model_folder(embedder)
    if folder is None:
        return None
    files = {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts  # hub bookkeeping, not the model
    }
    return {
        "files": files,
        "max_seq_length": embedder.model.max_seq_length,
        "modules": _modules(embedder.model),
        "normalize": embedder.normalize,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
    }


class CachedEmbeddings:
    """Embeddings of the training rows by position: read from the cache when a complete one exists for this key,
    else encoded and kept for the cache, which is published whole by `finish`. folder None: no cache."""

    def __init__(self, embedder, folder: Path | None):
        self.embedder, self.folder = embedder, folder
        self.cached = None
        if folder is not None and (folder / "meta.json").is_file():
            self.cached = np.load(folder / "embeddings.npy", mmap_mode="r")
        self.new: list[np.ndarray] = []
        self.status = "off" if folder is None else "read" if self.cached is not None else "written"

    @classmethod
    def open(cls, embedder, data_fingerprint: str | None, root: Path | None, log=None) -> CachedEmbeddings:
        key = model_key(embedder) if root is not None else None
        why = (
            "no cache folder"
            if root is None
            else f"the model {embedder.path} cannot be identified by its files"
            if key is None
            else "the training data cannot be identified (a dataset without a resolved commit)"
            if data_fingerprint is None
            else None
        )
        if why:
            if log is not None:
                log.warning("embedding cache off: %s; every row is encoded", why)
            return cls(embedder, None)
        digest = hashlib.sha256(json.dumps([key, data_fingerprint], sort_keys=True).encode()).hexdigest()[:32]
        return cls(embedder, root / digest)

    def vectors(self, start: int, texts: list[str]) -> np.ndarray:
        if self.cached is not None and start + len(texts) <= len(self.cached):
            return np.array(self.cached[start : start + len(texts)], dtype=np.float32)  # a copy: writable
        vectors = self.embedder.encode(texts)
        if self.folder is not None and self.cached is None:
            self.new.append(vectors)
        return vectors

    def finish(self) -> None:
        if self.folder is None or not self.new or self.cached is not None:
            return
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "embeddings.npy", np.concatenate(self.new))
        meta = {"model": self.embedder.path, "rows": sum(map(len, self.new))}
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(self.folder, ignore_errors=True)
        tmp.rename(self.folder)
