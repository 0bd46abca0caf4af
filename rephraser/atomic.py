"""Write-then-rename helpers: outputs appear whole or not at all.

    tmp = temp_beside(final)           # an empty file in the same directory (so rename is atomic)
    ... write tmp ...
    publish(tmp, final)                # permissions as a plain open() would give, then os.replace
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
