"""How a sandboxed program is launched: the command line around `python -I -S -c BOOTSTRAP`, and its environment.

    cmd = launch_command(program_file, work_dir, uid, config, result_fd=5)

isolation="namespaces" (default) wraps the interpreter in bubblewrap: new network, pid, ipc and uts
namespaces, the whole filesystem read-only, the invoking user's home and /tmp hidden behind private
tmpfs mounts, the sample's work dir (/tmp/sandbox, holding a read-only program.py) the only writable place
besides /tmp, both size-limited tmpfs mounts (`disk_mb`: a program cannot fill the host's disk with many
files), --die-with-parent and --new-session. The interpreter's prefixes and site-packages are bound back
read-only wherever they live (a venv under /tmp or home is otherwise invisible inside). Run as root, the
program then drops to a per-slot uid with setpriv (no capabilities, no_new_privs), which makes the process
limit per sample and the filesystem permissions apply. isolation="rlimits" is the weaker mode a user must
ask for by name (REPHRASER_SANDBOX_ISOLATION=rlimits for the lm-eval tasks): same uid drop, limits and
scrubbed environment, but no namespaces, and the disk is bounded per file only (RLIMIT_FSIZE).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from rephraser.errors import RephraserError
from rephraser.sandbox.bootstrap import SOURCE as BOOTSTRAP

ISOLATIONS = ("namespaces", "rlimits")
SANDBOX_DIR = "/tmp/sandbox"  # a private, size-limited tmpfs: "/" itself is read-only
WEAKER = (
    "to accept weaker isolation, set REPHRASER_SANDBOX_ISOLATION=rlimits (lm-eval tasks) or pass "
    "isolation='rlimits' to SandboxConfig"
)


class SandboxUnavailable(RephraserError):
    """The isolation the user asked for cannot be had on this machine."""


def scrubbed_env(home: str) -> dict[str, str]:
    """Nothing of the parent's environment (tokens, keys) goes in; one thread for numeric libraries."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    env.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")})
    return env


@functools.cache
def site_packages() -> list[str]:
    """This interpreter's site-packages (the venv's), for the sandboxed `-S` interpreter's sys.path."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def switches_uid() -> bool:
    return os.geteuid() == 0


def interpreter_paths() -> list[Path]:
    """Everything the sandboxed interpreter reads: its prefixes, its real binary's tree, its site-packages."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site_packages()}
    paths.add(str(Path(sys.executable).resolve().parent.parent))
    return sorted({Path(p).resolve() for p in paths if p})


def _hidden_dirs() -> list[Path]:
    home = Path.home().resolve()
    return [Path("/tmp")] + ([home] if str(home) not in ("/", "") and home.is_dir() and home != Path("/tmp") else [])


def _bind_back(hidden: list[Path]) -> list[str]:
    """Read-only binds of the interpreter paths that a hidden dir would hide (outermost only). The directories
    leading to them are made first, traversable (0755): bubblewrap would create them 0700, and the sandbox's
    own uid could then not reach the interpreter, its shared library or its site-packages (the dynamic loader
    then silently takes the system's libpython instead)."""
    wanted = [p for p in interpreter_paths() if any(p == h or p.is_relative_to(h) for h in hidden) and p.exists()]
    outermost = [p for p in wanted if not any(p != q and p.is_relative_to(q) for q in wanted)]
    args, made = [], set()
    for path in outermost:
        root = next(h for h in hidden if path == h or path.is_relative_to(h))
        for parent in reversed(path.parents):
            if parent.is_relative_to(root) and parent != root and parent not in made:
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--ro-bind", str(path), str(path)]
    return args


def _bwrap_args(program_file: Path, disk_bytes: int) -> list[str]:
    hidden = _hidden_dirs()
    tmpfs = [arg for h in hidden[1:] for arg in ("--tmpfs", str(h))]  # home: hidden, nothing to write there
    return [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        *tmpfs,
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        str(disk_bytes),
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        *_bind_back(hidden),
        "--size",
        str(disk_bytes),
        "--perms",
        "1777",
        "--tmpfs",
        SANDBOX_DIR,
        "--ro-bind",
        str(program_file),
        f"{SANDBOX_DIR}/program.py",
        "--chdir",
        SANDBOX_DIR,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *[x for k, v in scrubbed_env(SANDBOX_DIR).items() for x in ("--setenv", k, v)],
        "--",
    ]


def _setpriv_args(uid: int) -> list[str]:
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def launch_command(program_file: Path, uid: int | None, isolation: str, disk_bytes: int, result_fd: int) -> list[str]:
    python = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(result_fd)]
    drop = _setpriv_args(uid) if uid is not None else []
    if isolation == "namespaces":
        return _bwrap_args(program_file, disk_bytes) + drop + python
    return drop + python


@functools.cache
def check_available(isolation: str) -> None:
    """Fail closed: raise SandboxUnavailable naming what is missing and the setting that accepts less."""
    if isolation not in ISOLATIONS:
        raise SandboxUnavailable(f"unknown isolation {isolation!r}; choose one of {ISOLATIONS}")
    needed = (["setpriv"] if switches_uid() else []) + (["bwrap"] if isolation == "namespaces" else [])
    for tool in needed:
        if shutil.which(tool) is None:
            hint = "apt-get install bubblewrap" if tool == "bwrap" else "apt-get install util-linux"
            raise SandboxUnavailable(f"{tool} not found: install it ({hint}), or {WEAKER}")
