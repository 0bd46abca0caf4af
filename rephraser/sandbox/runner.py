"""Run untrusted programs, one fresh interpreter each, in parallel, and tell exactly how each ended.

    with Sandbox(SandboxConfig(workers=4), consent=True) as box:
        results = box.run([Program("HumanEval/0", source), ...])     # same order as given
    results[0].outcome  # "passed" | "failed" | "timeout" | "crashed" | "error"

Nothing runs without consent=True (lm-eval's --confirm_run_unsafe_code, or the caller's explicit flag).
Each program gets: a private, size-limited work dir as cwd, stdin from /dev/null, a scrubbed environment, no
Unix sockets (isolation.py), hard limits (CPU seconds, address space, file size, open files, processes, no core
dumps), stdout/stderr into files capped by the file-size limit and truncated on read, its own session and
process group killed whole on timeout, and (as root) its own uid per worker slot, whose leftover processes are
swept after every run. Only the bootstrap's guard can write the pass line (bootstrap.py).
Slot uids are claimed machine-wide (uids.py): concurrent sandboxes never share one, so one's sweep cannot
kill another's program.

"error" means the sandbox itself failed (it could not start the program): that is never a verdict on the
program. `Sandbox()` first runs a probe program exactly as it will run the real ones and refuses to start
(SandboxUnavailable) if that fails; callers that score programs stop on an "error" result
(`raise_on_errors`) instead of counting it as a failed sample.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rephraser.config import check_choice, check_positive
from rephraser.errors import ConfigError, RephraserError
from rephraser.sandbox.bootstrap import PASS_LINE
from rephraser.sandbox.isolation import (
    ISOLATIONS,
    WEAKER,
    SandboxUnavailable,
    bootstrap_drops_uid,
    check_available,
    launch_command,
    scrubbed_env,
    seccomp_program,
    site_packages,
    switches_uid,
)
from rephraser.sandbox.uids import UidLease

OUTCOMES = ("passed", "failed", "timeout", "crashed", "error")


class ExecutionNotAllowed(RephraserError):
    """Model-written code may run only after the user opts in."""


class SandboxFailure(RephraserError):
    """The sandbox could not run a program (an infrastructure failure, not the program's outcome)."""


def raise_on_errors(results: list[Result]) -> None:
    """Stop, with the reason, if any result is "error": scoring it as a failed sample would be a wrong number."""
    errors = [r for r in results if r.outcome == "error"]
    if errors:
        first = errors[0]
        raise SandboxFailure(
            f"the sandbox failed to run {len(errors)} of {len(results)} program(s) (first: {first.task_id}: "
            f"{first.detail}{'; ' + first.stderr.strip().splitlines()[-1] if first.stderr.strip() else ''}); "
            "no score is reported rather than a wrong one"
        )


@dataclass
class SandboxConfig:
    timeout_s: float = 10.0
    """wall-clock limit per program"""
    cpu_s: int = 10
    """CPU-seconds limit per program (RLIMIT_CPU)"""
    memory_mb: int = 2048
    """address-space limit (numpy needs ~1 GiB of it)"""
    file_size_mb: int = 16
    """largest file, stdout and stderr included"""
    open_files: int = 128
    """RLIMIT_NOFILE"""
    processes: int = 32
    """RLIMIT_NPROC for the slot's uid (threads count too)"""
    output_bytes: int = 64 * 1024
    """stdout/stderr kept per program"""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """programs run at once"""
    disk_mb: int = 64
    """size of the program's writable space (its work dir and /tmp, each a tmpfs of this size; namespaces isolation
    only)"""
    isolation: str = field(default="namespaces", metadata={"help": f"one of {ISOLATIONS}; 'rlimits' is weaker"})
    base_uid: int = 61000
    """as root, each slot runs as its own free uid from base_uid up (claimed machine-wide)"""

    def __post_init__(self):
        check_choice("isolation", self.isolation, ISOLATIONS)
        for name in (
            "cpu_s",
            "memory_mb",
            "file_size_mb",
            "open_files",
            "processes",
            "output_bytes",
            "workers",
            "disk_mb",
        ):
            check_positive(name, getattr(self, name))
        if not (isinstance(self.timeout_s, (int, float)) and math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ConfigError(f"timeout_s: expected a positive, finite number of seconds, got {self.timeout_s!r}")

    def rlimits(self) -> dict[str, tuple[int, int]]:
        mb = 1024 * 1024
        return {
            "RLIMIT_CPU": (self.cpu_s, self.cpu_s + 1),
            "RLIMIT_AS": (self.memory_mb * mb,) * 2,
            "RLIMIT_FSIZE": (self.file_size_mb * mb,) * 2,
            "RLIMIT_NOFILE": (self.open_files,) * 2,
            "RLIMIT_NPROC": (self.processes,) * 2,
            "RLIMIT_CORE": (0, 0),
        }


class ProgramError(RephraserError):
    """A program that cannot be handed to an interpreter at all."""


@dataclass(frozen=True)
class Program:
    task_id: str
    source: str

    def __post_init__(self):
        try:
            self.source.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ProgramError(
                f"program {self.task_id}: source is not valid Unicode (lone surrogate "
                f"{self.source[e.start]!r} at character {e.start})"
            ) from None


@dataclass
class Result:
    task_id: str
    outcome: str
    detail: str = ""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None, consent: bool = False):
        if not consent:
            raise ExecutionNotAllowed(
                "refusing to execute model-written code without consent: pass --confirm_run_unsafe_code "
                "to lm_eval (or consent=True to rephraser.sandbox.Sandbox) once you accept the risk"
            )
        self.config = config or SandboxConfig()
        check_available(self.config.isolation)
        self.root = Path(tempfile.mkdtemp(prefix="rephraser-sandbox-"))
        self.root.chmod(0o711)  # slot uids must reach their own work dir below it in 'rlimits' mode
        self.lease: UidLease | None = None
        self.slots: queue.Queue[int | None] = queue.Queue()
        try:
            if switches_uid():
                self.lease = UidLease(self.config.base_uid, self.config.workers, sweep=kill_uid)
            for slot in range(self.config.workers):
                self.slots.put(self.lease.uids[slot] if self.lease else None)
            self._probe()
        except BaseException:
            self.close()
            raise

    def _probe(self) -> None:
        """Start the real interpreter exactly as programs will be started; fail closed if it cannot run."""
        key = (self.config.isolation, self.config.base_uid, self.config.disk_mb, self.config.memory_mb, sys.executable)
        if key in _PROBED:
            return
        # The program must run THIS interpreter: a slot uid that cannot read its files can end up on the system's
        # libpython (another version, other packages) with nothing else failing, which would score programs under
        # another Python than the evaluation's.
        host = (sys.version, sys.base_prefix)
        probe = f"import sys\nprint(repr((sys.version, sys.base_prefix)))\nassert sys.flags.isolated\nassert (sys.version, sys.base_prefix) == {host!r}\n"  # noqa: E501
        result = self._run_on_a_slot(Program("sandbox-probe", probe))
        if result.passed:
            _PROBED.add(key)
            return
        seen = result.stdout.strip().splitlines()[:1]
        if seen and seen[0] != repr(host):
            raise SandboxUnavailable(
                f"the sandbox would run another Python than {sys.executable} (it ran {seen[0]}, not {host!r}): the "
                f"sandbox's uids ({self.config.base_uid}+) cannot read this interpreter's files, so the system's "
                "libpython was loaded instead. Make the interpreter and its site-packages readable by other users "
                "(e.g. a Python outside /root)" + ("" if self.config.isolation == "rlimits" else f", or {WEAKER}")
            )
        why = result.stderr.strip().splitlines()[-1:] or [result.detail]
        raise SandboxUnavailable(
            f"the sandbox cannot run {sys.executable} ({result.outcome}: {result.detail}; {why[0]}). "
            "If the interpreter or its site-packages are not readable by other users (the "
            f"sandbox runs programs as uids {self.config.base_uid}+), make them so; or {WEAKER}"
        )

    def run(self, programs: list[Program]) -> list[Result]:
        """Run all programs on `workers` slots; results in the order of `programs`."""
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            return list(pool.map(self._run_on_a_slot, programs))

    def _run_on_a_slot(self, program: Program) -> Result:
        uid = self.slots.get()
        try:
            return run_one(program, self.config, self.root, uid)
        finally:
            self.slots.put(uid)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.lease:
            self.lease.release()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


_PROBED: set[tuple] = set()


def run_one(program: Program, config: SandboxConfig, root: Path, uid: int | None) -> Result:
    """One program in one fresh interpreter; never raises for anything the program does."""
    work = Path(tempfile.mkdtemp(dir=root, prefix="run-"))
    private = Path(tempfile.mkdtemp(dir=root, prefix="out-"))  # not visible to the program
    try:
        (work / "program.py").write_text(program.source, encoding="utf-8")
        (work / "program.py").chmod(0o644)
        if uid is not None and config.isolation == "rlimits":  # the work dir is the program's cwd
            os.chown(work, uid, uid)
            os.chown(work / "program.py", uid, uid)
        return _execute(program, config, work, private, uid)
    except OSError as e:
        return Result(program.task_id, "error", f"sandbox infrastructure: {e}")
    finally:
        if uid is not None:
            kill_uid(uid)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def _execute(program: Program, config: SandboxConfig, work: Path, private: Path, uid: int | None) -> Result:
    nonce = secrets.token_hex(16)
    paths = {name: private / name for name in ("stdout", "stderr", "result")}
    files = {name: open(path, "wb") for name, path in paths.items()}
    seccomp_fd = None
    start = time.monotonic()
    try:
        seccomp_fd = _seccomp_pipe() if config.isolation == "namespaces" else None
        fd = files["result"].fileno()
        disk = config.disk_mb * 1024 * 1024
        command = launch_command(work / "program.py", uid, config.isolation, disk, fd, seccomp_fd)
        proc = subprocess.Popen(
            command,
            cwd=work,
            stdin=subprocess.PIPE,
            stdout=files["stdout"],
            stderr=files["stderr"],
            pass_fds=(fd,) if seccomp_fd is None else (fd, seccomp_fd),
            start_new_session=True,
            env={} if config.isolation == "namespaces" else scrubbed_env(str(work)),
        )  # bwrap sets its own
    finally:
        for fh in files.values():
            fh.close()
        if seccomp_fd is not None:
            os.close(seccomp_fd)
    bootstrap_uid = uid if bootstrap_drops_uid(config.isolation) else None
    timed_out = _wait(proc, {"nonce": nonce, "uid": bootstrap_uid}, config, start)
    seconds = time.monotonic() - start
    result_text = _read_capped(paths["result"], 4096)
    out, err = _read_capped(paths["stdout"], config.output_bytes), _read_capped(paths["stderr"], config.output_bytes)
    outcome, detail = classify(proc.returncode, timed_out, result_text, nonce, config)
    return Result(program.task_id, outcome, detail, out, err, seconds)


def _seccomp_pipe() -> int:
    """The read end of a pipe holding the whole filter: bubblewrap reads it to the end, then closes it."""
    read, write = os.pipe()
    try:
        os.write(write, seccomp_program())  # a few hundred bytes: far below a pipe's buffer
    finally:
        os.close(write)
    return read


def _wait(proc: subprocess.Popen, per_run: dict, config: SandboxConfig, start: float) -> bool:
    """Send the spec, wait up to the wall limit, then kill the whole process group. True if killed."""
    spec = {**per_run, "limits": config.rlimits(), "site_packages": site_packages(), "pass_line": PASS_LINE}
    try:
        proc.stdin.write((json.dumps(spec) + "\n").encode())
        proc.stdin.close()
    except OSError:  # the launcher died before reading: classified from its exit status
        pass
    if _exited_within(proc, max(0.0, config.timeout_s - (time.monotonic() - start))):
        proc.wait()
        return False
    _kill_group(proc.pid)
    proc.wait()
    return True


def _exited_within(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait for exit without polling: a pidfd becomes readable the moment the process exits
    (Popen.wait(timeout) polls with sleeps of up to 50 ms, which doubled the cost of a short program)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel or not Linux): poll
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        return bool(select.select([pidfd], [], [], seconds)[0])
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_uid(uid: int) -> int:
    """SIGKILL every process of `uid` (a slot's own uid: catches setsid'd grandchildren). Returns how many."""
    killed = 0
    for _ in range(50):  # repeat: a fork bomb may spawn while we sweep
        pids = [p for p in _pids_of(uid)]
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    return killed


def _pids_of(uid: int):
    """Live processes of `uid`. Zombies are skipped: they are dead, and an orphan's zombie is its new
    parent's (the pid-namespace init, or the machine's) to reap, not ours."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and _state(entry.name) != "Z":
                    yield int(entry.name)
            except (FileNotFoundError, ProcessLookupError):
                continue


def _state(pid: str) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def _read_capped(path: Path, limit: int) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")


def classify(returncode: int, timed_out: bool, result_text: str, nonce: str, config: SandboxConfig) -> tuple[str, str]:
    """Outcome from what the parent saw; only the nonce line written after the program returned passes."""
    lines = result_text.splitlines()
    if f"passed {nonce}" in lines and returncode == 0 and not timed_out:
        return "passed", ""
    if timed_out:
        return "timeout", f"killed after {config.timeout_s:g} s wall time"
    if "started" not in lines:
        return "error", f"sandbox did not start the program (exit status {returncode})"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum in (signal.SIGXCPU, signal.SIGKILL):
        return "timeout", f"CPU limit of {config.cpu_s} s ({signal.Signals(signum).name})"
    if signum > 0:
        return "crashed", f"killed by {signal.Signals(signum).name}"
    raised = [line.removeprefix("raised ") for line in lines if line.startswith("raised ")]
    return "failed", f"raised {raised[-1]}" if raised else f"exited with status {returncode} before the check completed"
