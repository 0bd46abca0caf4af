"""Content hashes of files, the identity that runs compare (a re-tokenized file at the same path differs).

sha256_file("x.tok") -> "9f86d0..."      # streamed in 1 MiB chunks: constant memory
"""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
