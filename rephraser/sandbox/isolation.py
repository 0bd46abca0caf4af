"""How a sandboxed program is launched: the command line around `python -I -c BOOTSTRAP`, and its environment.

    cmd = launch_command(work_dir, uid, isolation="namespaces", result_fd=5)

isolation="namespaces" (default) wraps the interpreter in bubblewrap: new network, pid, ipc and uts
namespaces, the whole filesystem read-only, a private /tmp, the work dir as the only writable place
(/tmp/sandbox), the invoking user's home hidden, --die-with-parent and --new-session. Run as root, the
program then drops to a per-slot uid with setpriv (no capabilities, no_new_privs), which makes the
process limit per sample and the filesystem permissions apply. isolation="rlimits" is the weaker mode
a user must ask for by name: same uid drop, limits and scrubbed environment, but no namespaces.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rephraser.sandbox.bootstrap import SOURCE as BOOTSTRAP
from rephraser.errors import RephraserError

ISOLATIONS = ("namespaces", "rlimits")
SANDBOX_DIR = "/tmp/sandbox"  # inside the private tmpfs: "/" itself is read-only


class SandboxUnavailable(RephraserError):
    """The isolation the user asked for cannot be had on this machine."""


def scrubbed_env(home: str) -> dict[str, str]:
    """Nothing of the parent's environment (tokens, keys) goes in; one thread for numeric libraries."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": "/tmp",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    env.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")})
    return env


@functools.lru_cache(maxsize=None)
def site_packages() -> list[str]:
    """This interpreter's site-packages (the venv's), for the sandboxed `-S` interpreter's sys.path."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def switches_uid() -> bool:
    return os.geteuid() == 0


def _hidden_home_binds() -> list[str]:
    """Hide the invoking user's home (keys, tokens); bind back read-only the interpreter paths inside it."""
    home = Path.home().resolve()
    if str(home) in ("/", "") or not home.is_dir():
        return []
    args = ["--tmpfs", str(home)]
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    prefixes.add(Path(sys.executable).resolve().parent.parent)
    for prefix in sorted(prefixes):
        if prefix.is_relative_to(home):
            args += ["--ro-bind", str(prefix), str(prefix)]
    return args


def _bwrap_args(work_dir: Path) -> list[str]:
    return [
        "bwrap", "--ro-bind", "/", "/", *_hidden_home_binds(),
        "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--bind", str(work_dir), SANDBOX_DIR, "--chdir", SANDBOX_DIR,
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--die-with-parent", "--new-session", "--clearenv",
        *[x for k, v in scrubbed_env(SANDBOX_DIR).items() for x in ("--setenv", k, v)],
        "--",
    ]


def _setpriv_args(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def launch_command(work_dir: Path, uid: int | None, isolation: str, result_fd: int) -> list[str]:
    python = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(result_fd)]
    drop = _setpriv_args(uid) if uid is not None else []
    if isolation == "namespaces":
        return _bwrap_args(work_dir) + drop + python
    return drop + python


@functools.lru_cache(maxsize=None)
def check_available(isolation: str) -> None:
    """Fail closed: raise SandboxUnavailable naming what is missing and the flag that accepts less."""
    if isolation not in ISOLATIONS:
        raise SandboxUnavailable(f"unknown isolation {isolation!r}; choose one of {ISOLATIONS}")
    weaker = "pass isolation='rlimits' (CLI: --sandbox-isolation rlimits) to accept weaker isolation"
    needed = (["setpriv"] if switches_uid() else []) + (["bwrap"] if isolation == "namespaces" else [])
    for tool in needed:
        if shutil.which(tool) is None:
            hint = "apt-get install bubblewrap" if tool == "bwrap" else "apt-get install util-linux"
            raise SandboxUnavailable(f"{tool} not found: install it ({hint}) or {weaker}")
    if isolation == "namespaces":
        probe = _bwrap_args(Path("/tmp")) + ["/bin/true"]
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot create namespaces here ({done.stderr.strip()}); {weaker}")
