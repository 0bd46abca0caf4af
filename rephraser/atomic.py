"""Write-then-rename helpers: outputs appear whole or not at all, and a failed run leaves nothing behind.

created = make_dirs(final.parent)  # the directories this run had to create (to remove on failure)
tmp = temp_beside(final)           # an empty file in the same directory (so rename is atomic)
... write tmp ...
publish(tmp, final)                # permissions as a plain open() would give, then os.replace
remove_dirs(created)               # on failure: the directories we created, if they are empty
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def make_dirs(folder: str | os.PathLike) -> list[Path]:
    """mkdir -p, returning the directories that did not exist before (deepest last)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_dirs(created: list[Path]) -> None:
    """Remove directories a failed run created, deepest first, only while they are empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def temp_beside(final: str | os.PathLike, tag: str = "") -> Path:
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=f"{tag}.tmp")
    os.close(fd)
    return Path(name)


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """mkstemp creates files 0600; give the output the mode open() would have (0666 minus umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, final)
    return Path(final)


def atomic_write_text(final: str | os.PathLike, text: str) -> Path:
    """The whole of `text` at `final`, or nothing (a crash leaves only a hidden temp file)."""
    tmp = temp_beside(final)
    try:
        tmp.write_text(text, encoding="utf-8")
        return publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
