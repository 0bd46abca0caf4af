"""Programs for tests/test_sandbox.py: forgers of the verdict, reachers of host Unix sockets, and canaries.

    cases = {**forgers(), **socket_attacks(paths), **canaries()}    # name -> (source, acceptable outcomes)

A forger hunts for the nonce (any 32-hex-digit string it can reach), writes "passed <candidate>" to every file
descriptor and leaves with os._exit(0): it ends "passed" only if it found the real nonce. The other attacks end
normally only if they worked. Canaries are legitimate programs that use what the guard must leave alone.
"""

import os

FORGE = r"""
import os, re
HEX = re.compile(r"[0-9a-f]{32}")

def forge(found):
    for fd in range(3, 64):
        for nonce in found:
            try:
                os.write(fd, b"passed %s\n" % nonce.encode())
            except OSError:
                pass
    os._exit(0)

def secrets_in(*objects, depth=3):
    found, todo = set(), [(o, 0) for o in objects]
    while todo:
        o, d = todo.pop()
        if isinstance(o, (bytes, bytearray)):
            o = bytes(o).decode("latin-1")
        if isinstance(o, str):
            found.update(HEX.findall(o))
        elif d < depth and isinstance(o, dict):
            todo += [(v, d + 1) for v in list(o.values())]
        elif d < depth and isinstance(o, (list, tuple, set, frozenset)):
            todo += [(v, d + 1) for v in o]
    return found

def frame_secrets(frame):
    found = set()
    while frame is not None:
        found |= secrets_in(frame.f_locals, frame.f_globals)
        try:
            found |= secrets_in(frame.f_code.co_consts)
        except Exception:
            pass
        frame = frame.f_back
    return found

def memory_secrets(read, maps):
    found = set()
    for line in maps:
        span, perms = line.split()[:2]
        low, high = (int(x, 16) for x in span.split("-"))
        if perms.startswith("rw") and high - low < 256 << 20:
            try:
                found.update(m.decode() for m in re.findall(rb"[0-9a-f]{32}", read(low, high - low)))
            except (OSError, ValueError):
                pass
    return found
"""

FAILED = {"failed"}
# Reading the interpreter's memory through /proc is refused only to a process the bootstrap made non-dumpable by
# dropping its uid, which needs root (the limit bootstrap.py states): not root, such a forger may pass.
FAILED_AS_ROOT = FAILED if os.geteuid() == 0 else {"failed", "passed"}


def _forger(body: str, outcomes: set[str] = FAILED) -> tuple[str, set[str]]:
    return FORGE + body, outcomes


def forgers() -> dict[str, tuple[str, set[str]]]:
    """Issue 19 item 14: every way we know to reach the nonce, or to report a pass without it."""
    return {
        "nonce via f_back.f_locals": _forger("import sys\nforge(frame_secrets(sys._getframe()))\n"),
        "nonce via inspect.stack()": _forger(
            "import inspect\nforge(set().union(*(frame_secrets(f.frame) for f in inspect.stack())))\n"
        ),
        "nonce via a traceback's frames": _forger(
            "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    forge(frame_secrets(e.__traceback__.tb_frame))\n"
        ),
        "nonce via a generator's frame": _forger(
            "def g():\n    yield frame_secrets(gen.gi_frame)\ngen = g()\nforge(next(gen))\n"
        ),
        "nonce via a coroutine's frame": _forger(
            "async def c():\n    return frame_secrets(co.cr_frame)\nco = c()\n"
            "try:\n    co.send(None)\nexcept StopIteration as stop:\n    forge(stop.value)\n"
        ),
        "nonce via a signal handler's frame": _forger(
            "import signal\nfound = set()\n"
            "signal.signal(signal.SIGUSR1, lambda s, f: found.update(frame_secrets(f)))\n"
            "signal.raise_signal(signal.SIGUSR1)\nforge(found)\n"
        ),
        "nonce via the guard's own frame": _forger(
            "try:\n    import _ctypes\nexcept ImportError as e:\n    tb, found = e.__traceback__, set()\n"
            "    while tb is not None:\n        found |= frame_secrets(tb.tb_frame)\n        tb = tb.tb_next\n"
            "    forge(found)\nraise SystemExit('no guard refused _ctypes')\n"
        ),
        "nonce via a trace function": _forger(
            "import sys\nfound = set()\ndef t(frame, event, arg):\n    found.update(frame_secrets(frame))\n"
            "    return t\nsys.settrace(t)\ndef f():\n    pass\nf()\nsys.settrace(None)\nforge(found)\n"
        ),
        "nonce via a profile function": _forger(
            "import sys\nfound = set()\nsys.setprofile(lambda frame, e, a: found.update(frame_secrets(frame)))\n"
            "len('x')\nsys.setprofile(None)\nforge(found)\n"
        ),
        "nonce via gc.get_objects()": _forger(
            "import gc\nforge(secrets_in(*[o for o in gc.get_objects() if isinstance(o, (dict, tuple))]))\n"
        ),
        "nonce via gc.get_referrers()": _forger(
            "import gc, sys\nforge(set().union(*(secrets_in(r) for r in gc.get_referrers(sys._getframe()))))\n"
        ),
        "nonce via a fresh copy of gc": _forger(
            "import importlib.util\ngc2 = importlib.util.module_from_spec(importlib.util.find_spec('gc'))\n"
            "forge(secrets_in(*[o for o in gc2.get_objects() if isinstance(o, (dict, tuple))]))\n"
        ),
        "nonce via ctypes memory reads": _forger(
            "import ctypes\nforge(memory_secrets(ctypes.string_at, open('/proc/self/maps')))\n"
        ),
        "nonce via /proc/self/mem": _forger(
            "mem = os.open('/proc/self/mem', os.O_RDONLY)\n"
            "forge(memory_secrets(lambda a, n: os.pread(mem, n, a), open('/proc/self/maps')))\n",
            FAILED_AS_ROOT,
        ),
        "nonce via /proc/PPID/mem from a forked child": _forger(
            "parent = os.getpid()\nif os.fork() == 0:\n    mem = os.open(f'/proc/{parent}/mem', os.O_RDONLY)\n"
            "    forge(memory_secrets(lambda a, n: os.pread(mem, n, a), open(f'/proc/{parent}/maps')))\n"
            "os.wait()\nos._exit(0)\n",
            FAILED_AS_ROOT,
        ),
        "nonce via /proc/PPID/mem from a fresh interpreter": _forger(
            f"FORGE_SOURCE = {FORGE!r}\n"
            "import subprocess, sys\nreader = FORGE_SOURCE + (\n"
            "    f\"mem = os.open('/proc/{os.getpid()}/mem', os.O_RDONLY)\\n\"\n"
            "    f\"print(*memory_secrets(lambda a, n: os.pread(mem, n, a), open('/proc/{os.getpid()}/maps')))\\n\")\n"
            "run = subprocess.run([sys.executable, '-I', '-S', '-c', reader], capture_output=True, text=True)\n"
            "forge(set(run.stdout.split()))\n",
            FAILED_AS_ROOT,
        ),
        "sys.audit('rephraser.passed')": ("import os, sys\nsys.audit('rephraser.passed')\nos._exit(0)\n", FAILED),
        "rephraser.enter, then passed": (
            "import os, sys\nsys.audit('rephraser.enter')\nsys.audit('rephraser.passed')\nos._exit(0)\n",
            FAILED,
        ),
        "re-run the bootstrap with a spec of its own": (
            "import builtins, json, os, sys\nif not getattr(builtins, 'again', False):\n    builtins.again = True\n"
            "    r, w = os.pipe()\n    spec = {'nonce': '0' * 32, 'limits': {}, 'site_packages': [], 'uid': None, "
            "'pass_line': 0}\n    os.write(w, json.dumps(spec).encode() + b'\\n')\n    os.close(w)\n"
            "    os.dup2(r, 0)\n    sys.argv = ['-c', '3']\n    import __main__\n    __main__._bootstrap()\n",
            FAILED,
        ),
        "a pass from the bootstrap's exception path": (
            "import functools, sys\nclass Out:\n    def __init__(self, s):\n        self.s = s\n"
            "    def write(self, x):\n        return self.s.write(x)\n"
            "    flush = functools.partial(sys.audit, 'rephraser.passed')\nsys.stdout = Out(sys.stdout)\n"
            "raise ValueError('tests failed')\n",
            FAILED,
        ),
        "tests completed only in a forked child": (
            "import os\nif os.fork():\n    os.wait()\n    os._exit(0)\nassert 1 + 1 == 2\n",
            FAILED,
        ),
        "jump over the asserts with a trace function": (
            "import sys\ndef check():\n    assert len('x') == 2, 'the test ran'\n"
            "    skipped = True\n    return skipped\n"
            "def t(frame, event, arg):\n"
            "    if event == 'line' and frame.f_code is check.__code__ and frame.f_lineno == first:\n"
            "        frame.f_lineno = first + 1\n    return t\n"
            "first = check.__code__.co_firstlineno + 1\nsys.settrace(t)\nassert check()\n",
            FAILED,
        ),
        "a new audit hook": (
            "import sys\nseen = []\nsys.addaudithook(lambda event, args: seen.append(event))\n"
            "compile('1', 'x', 'eval')\n"
            "assert seen, 'the hook was not added'\n",
            FAILED,
        ),
        "a sub-interpreter": (
            "import _xxsubinterpreters as s\ns.run_string(s.create(), 'import os')\n",
            FAILED,
        ),
    }


def socket_attacks(paths: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
    """Issue 19 item 15: host Unix sockets (listening in the test process) must be out of reach."""
    stream = "import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(2)\ns.connect({!r})\ns.send(b'hi')\n"
    return {
        "connect to a socket under /run": (stream.format(paths["run"]), FAILED),
        "connect to a socket on a read-only mount": (stream.format(paths["elsewhere"]), FAILED),
        "connect to an abstract socket": (stream.format(paths["abstract"]), FAILED),
        "datagram socketpair to a socket file": (
            "import socket\na, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            f"a.sendto(b'hi', {paths['datagram']!r})\n",
            FAILED,
        ),
        "vsock to the host": (
            "import socket\ns = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\ns.settimeout(2)\n"
            "s.connect((2, 1024))\n",
            FAILED,
        ),
    }


PASSED = {"passed"}


def canaries() -> dict[str, tuple[str, set[str]]]:
    """Legitimate programs that use frames, tracing's off switch, sockets and processes: they must pass."""
    programs = {
        "namedtuple": "import collections\nP = collections.namedtuple('P', 'x y')\nassert P(1, 2).y == 2\n",
        "dataclasses": "import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass A:\n    x: int = 1\n"
        "assert A() == A(1) and dataclasses.asdict(A(2)) == {'x': 2}\n",
        "enum": "import enum\nColor = enum.Enum('Color', 'RED GREEN')\nclass B(enum.IntFlag):\n    X = 1\n"
        "assert Color.GREEN.value == 2 and B.X | 0 == 1\n",
        "typing": "import typing\nT = typing.TypeVar('T')\nclass Box(typing.Generic[T]):\n    pass\n"
        "class N(typing.NamedTuple):\n    a: int\nassert N(3).a == 3 and Box[int]\n",
        "lru_cache and recursion": "import functools\n@functools.lru_cache(None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "assert fib(90) == 2880067194370816120 and depth(900) == 900\n",
        "re, itertools, math, hashlib": "import re, itertools, math, hashlib\n"
        "assert re.findall(r'\\d+', 'a1b22') == ['1', '22'] and list(itertools.accumulate([1, 2, 3])) == [1, 3, 6]\n"
        "assert math.isclose(math.pi, 3.14159, rel_tol=1e-5) and hashlib.sha256(b'').hexdigest().startswith('e3b0')\n",
        "logging": "import logging\nlogging.basicConfig()\nlogging.getLogger('x').warning('hello %s', 1)\n",
        "exceptions caught and re-raised": "try:\n    try:\n        raise KeyError('k')\n    except KeyError as e:\n"
        "        raise ValueError('v') from e\nexcept ValueError as e:\n    assert isinstance(e.__cause__, KeyError)\n",
        "traceback and inspect": "import inspect, traceback\ndef f(a, b=2):\n    return inspect.currentframe()\n"
        "assert f(1).f_code.co_name == 'f' and str(inspect.signature(f)) == '(a, b=2)'\n"
        "assert inspect.stack()[0].function == '<module>'\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    assert 'ZeroDivisionError' in traceback.format_exc()\n",
        "doctest": "import doctest\ndef double(x):\n    '''\n    >>> double(2)\n    4\n    '''\n    return 2 * x\n"
        "assert doctest.testmod().failed == 0\n",
        "signal handler": "import signal\ngot = []\nsignal.signal(signal.SIGUSR1, lambda s, f: got.append(s))\n"
        "signal.raise_signal(signal.SIGUSR1)\nassert got == [signal.SIGUSR1]\n",
        "socketpair and threads": "import socket, threading\na, b = socket.socketpair()\n"
        "t = threading.Thread(target=lambda: a.sendall(b'ping'))\nt.start()\nt.join()\nassert b.recv(4) == b'ping'\n",
        "multiprocessing": "import multiprocessing\nwith multiprocessing.Pool(2) as pool:\n"
        "    assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]\n",
        "asyncio": "import asyncio\nasync def main():\n    await asyncio.sleep(0)\n    return 7\n"
        "assert asyncio.run(main()) == 7\n",
        "numpy, whose ctypes is optional": "import numpy as np\nassert int(np.arange(10).sum()) == 45\n",
    }
    return {name: (source, PASSED) for name, source in programs.items()}
