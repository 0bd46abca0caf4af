"""An exclusive lock on an output directory, so two runs never write into the same one.

    with output_lock(out_dir, "training run"):     # RephraserError at once if another run holds it
        ...

The lock is `fcntl.flock` on `OUT_DIR/.lock`: the kernel releases it when the holder exits, however it exits
(a crash or kill -9 leaves no stale lock to clean up). The file keeps the holder's pid and host for the
error message only; the lock itself is the flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from rephraser.errors import RephraserError

LOCK_NAME = ".lock"


class OutputDirBusy(RephraserError):
    """Another process is writing into the same output directory."""


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, what: str = "run"):
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(errors="replace").strip() or "another process"
            raise OutputDirBusy(
                f"{folder} is in use by another {what} ({holder}); wait for it to finish "
                "or choose another output directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield path
    finally:
        os.close(fd)  # releases the flock
