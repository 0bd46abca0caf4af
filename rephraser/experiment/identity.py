"""Content fingerprints of a step's inputs: what a resumed experiment compares before it skips a step.

file_sha256(path)             a file's content
model_fingerprint(path)       a model: every file's content (sha256 of each whole file, remembered per file state)
docs_fingerprint(docs)        the evaluated docs of a part (what the lm-eval tasks will load)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rephraser.digest import sha256_file
from rephraser.modelref import model_identity

HASHES_FILE = "file-hashes.json"  # in rephraser's cache folder: (path, size, mtime, ctime, inode) -> sha256


def file_sha256(path) -> str:
    return sha256_file(path)


def _file_state(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def remembered_sha256(path: Path) -> str:
    """A whole file's sha256, hashed once per file state. Every write to a file changes its ctime, which no
    program can set back (mtime can be: cp -p, rsync -a), so a changed file is always hashed again, while an
    unchanged multi-GB checkpoint is hashed once, not at every step of every resume. Hashing only parts of a large
    file (its ends) let weights changed in the middle look like the same model."""
    from rephraser.atomic import atomic_write_text
    from rephraser.benchmarks.sources import cache_dir

    store = cache_dir() / HASHES_FILE
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    state = _file_state(path)
    if state not in known:
        known = {k: v for k, v in known.items() if Path(k.split("|")[0]).exists()}  # gone files: forgotten
        known[state] = sha256_file(path)
        try:  # only a speed-up: a cache that cannot be written costs a re-hash next time, never a wrong hash
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(store, json.dumps(known))
        except OSError:
            pass
    return known[state]


def model_fingerprint(name: str) -> dict:
    """A local model directory by its files' content; a hub id by its name (the hub resolves it)."""
    folder = Path(model_identity(name))
    if not folder.is_dir():
        return {"hub_id": name}
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[str(path.relative_to(folder))] = remembered_sha256(path)
    return {"files": files}  # content, not place: a model moved elsewhere is the same model


def docs_fingerprint(docs: list[dict]) -> str:
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return digest.hexdigest()
