"""How a sandboxed program is launched: the command line around `python -I -S -c BOOTSTRAP`, and its environment.

    cmd = launch_command(program_file, uid, isolation, disk_bytes, result_fd, seccomp_fd)

isolation="namespaces" (default) wraps the interpreter in bubblewrap: new network, pid, ipc and uts namespaces,
the whole filesystem read-only, the invoking user's home, /tmp and /run (and /var/run where it is not a link to
/run) hidden behind private tmpfs mounts, the sample's work dir (/tmp/sandbox, holding a read-only program.py) the
only writable place besides /tmp and /dev/shm (multiprocessing's semaphores), all size-limited tmpfs mounts
(`disk_mb`: a program cannot fill the host's disk with many files), --die-with-parent and --new-session. The
interpreter's prefixes and site-packages are bound back read-only wherever they live (a venv under /tmp, home or
/run is otherwise invisible inside). Hiding /run takes away the host's Unix sockets there (D-Bus, the systemd user
manager, Docker; the interpreter needs nothing from /run); a socket file anywhere else stays connectable through a
read-only mount, so the seccomp filter (seccomp.py) refuses AF_UNIX sockets altogether, and the network namespace
covers abstract ones. Run as root, setpriv clears the groups and every capability but CAP_SETUID and sets
no_new_privs; the bootstrap then drops to a per-slot uid itself (a process that changes uid is marked
non-dumpable by the kernel: bootstrap.py), which makes the process limit per sample and the filesystem
permissions apply. Not root, bubblewrap runs in a user namespace it makes, as the invoking user.

isolation="rlimits" is the weaker mode a user must ask for by name (REPHRASER_SANDBOX_ISOLATION=rlimits for the
lm-eval tasks): same limits, guard and scrubbed environment and a per-slot uid, but no namespaces and no seccomp
filter, so the program sees the host's network, its processes (/proc) and every socket its uid may connect to,
/run included, and the disk is bounded per file only (RLIMIT_FSIZE). setpriv drops the uid before the interpreter
starts, so the process stays dumpable: a program that reads its own memory (/proc/self/mem) can forge the verdict.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from rephraser.errors import RephraserError
from rephraser.sandbox.bootstrap import SOURCE as BOOTSTRAP
from rephraser.sandbox.seccomp import UnsupportedArchitecture, socket_filter

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
    """/tmp first (its tmpfs is the writable one), then what is only hidden: home, /run, /var/run unless a link."""
    home = Path.home().resolve()
    others = [home] if str(home) not in ("/", "") and home.is_dir() else []
    others += [Path(p) for p in ("/run", "/var/run") if os.path.isdir(p) and not os.path.islink(p)]
    unique = [p for i, p in enumerate(others) if p != Path("/tmp") and p not in others[:i]]
    return [Path("/tmp")] + [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]


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


def _bwrap_args(program_file: Path, disk_bytes: int, seccomp_fd: int) -> list[str]:
    hidden = _hidden_dirs()
    tmpfs = [arg for h in hidden[1:] for arg in ("--tmpfs", str(h))]  # home, /run: hidden, nothing to write there
    return [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        *tmpfs,
        "--dev",
        "/dev",
        "--size",
        str(disk_bytes),
        "--perms",
        "1777",
        "--tmpfs",
        "/dev/shm",  # multiprocessing's semaphores live here; bubblewrap's own /dev/shm is root's 0755
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
        "--seccomp",
        str(seccomp_fd),
        "--clearenv",
        *[x for k, v in scrubbed_env(SANDBOX_DIR).items() for x in ("--setenv", k, v)],
        "--",
    ]


def bootstrap_drops_uid(isolation: str) -> bool:
    """Who drops to the slot uid: the bootstrap in the namespaces mode (so that the kernel marks it non-dumpable),
    setpriv before the interpreter starts in the rlimits mode (without the mount namespace's read-only binds, the
    interpreter must be started by the uid that will import from it)."""
    return isolation == "namespaces"


def _setpriv_args(uid: int, isolation: str) -> list[str]:
    """Groups, capabilities and no_new_privs; the uid itself too unless the bootstrap drops to it, with the one
    capability left for that, which the kernel clears when the uid changes."""
    if bootstrap_drops_uid(isolation):
        user = [f"--regid={uid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all,+setuid"]
    else:
        user = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all"]
        user += ["--bounding-set=-all"]
    return ["setpriv", *user, "--"]


def launch_command(
    program_file: Path, uid: int | None, isolation: str, disk_bytes: int, result_fd: int, seccomp_fd: int | None
) -> list[str]:
    """The command; `seccomp_fd` is read by bubblewrap. As root, the bootstrap's spec must carry `uid` where
    bootstrap_drops_uid(isolation)."""
    python = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(result_fd)]
    drop = _setpriv_args(uid, isolation) if uid is not None else []
    if isolation == "namespaces":
        return _bwrap_args(program_file, disk_bytes, seccomp_fd) + drop + python
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
    if isolation == "namespaces":
        try:
            seccomp_program()
        except UnsupportedArchitecture as e:
            raise SandboxUnavailable(f"{e}: the socket filter cannot be had here; {WEAKER}") from None


@functools.cache
def seccomp_program() -> bytes:
    return socket_filter()
