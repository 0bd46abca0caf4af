"""Content fingerprints of a step's inputs: what a resumed experiment compares before it skips a step.

file_sha256(path)             a file's content
model_fingerprint(path)       a model: every file's content (weights: size, and the hash of their first and last MiB)
docs_fingerprint(docs)        the evaluated docs of a part (what the lm-eval tasks will load)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rephraser.digest import sha256_file
from rephraser.modelref import model_identity

WHOLE_HASH_BYTES = 64 << 20  # files up to this size are hashed whole; larger weights by size and their two ends


def file_sha256(path) -> str:
    return sha256_file(path)


def _ends_hash(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        digest.update(fh.read(1 << 20))
    return f"{size}:{digest.hexdigest()}"


def model_fingerprint(name: str) -> dict:
    """A local model directory by its files' content; a hub id by its name (the hub resolves it)."""
    folder = Path(model_identity(name))
    if not folder.is_dir():
        return {"hub_id": name}
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        files[str(path.relative_to(folder))] = sha256_file(path) if size <= WHOLE_HASH_BYTES else _ends_hash(path)
    return {"files": files}  # content, not place: a model moved elsewhere is the same model


def docs_fingerprint(docs: list[dict]) -> str:
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return digest.hexdigest()
