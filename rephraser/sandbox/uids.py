"""Slot uids claimed exclusively across every process on the machine.

As root, each sandbox slot runs programs under its own uid and, after each program, kills every process of
that uid (to catch setsid'd grandchildren). Two evaluations running at once (two `lm_eval` runs, a rephrase
and an evaluation) must therefore never share a uid: one's sweep would kill the other's running program and
score a correct sample as a timeout. Each uid is claimed with `fcntl.flock` on a file named after it; the
kernel releases the claim when its holder exits, however it exits, so a crash leaves nothing stale.
(No library hands out uids this way; flock is the standard tool for a machine-wide claim.)
"""

from __future__ import annotations

import fcntl
import os
import pwd
from pathlib import Path

from rephraser.errors import RephraserError

# One place for every process on the machine: /run is root's (only root switches uids), /tmp the fallback.
LOCK_DIR = Path("/run/rephraser-sandbox-uids" if os.access("/run", os.W_OK) else "/tmp/rephraser-sandbox-uids")
SEARCH = 4096  # how far above base_uid to look for free uids


class NoFreeUid(RephraserError):
    """Every uid the sandbox may use is taken by other running sandboxes."""


class UidLease:
    """`count` uids from `base` upward, none held by another process, none belonging to a real account."""

    def __init__(self, base: int, count: int, sweep):
        LOCK_DIR.mkdir(mode=0o755, exist_ok=True)
        self.uids: list[int] = []
        self._fds: list[int] = []
        try:
            for uid in range(base, base + SEARCH):
                if len(self.uids) == count:
                    break
                if not _is_account(uid) and self._claim(uid):
                    sweep(uid)  # leftovers of a holder that died mid-program are ours to end now
            if len(self.uids) < count:
                raise NoFreeUid(
                    f"the sandbox needs {count} free uid(s) from {base} but only {len(self.uids)} of "
                    f"uids {base}..{base + SEARCH - 1} are free (other sandboxes hold them: {LOCK_DIR})"
                )
        except BaseException:
            self.release()
            raise

    def _claim(self, uid: int) -> bool:
        fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.uids.append(uid)
        self._fds.append(fd)
        return True

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # releases the flock
        self._fds.clear()


def _is_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False
