"""The trusted first code inside a sandboxed interpreter: `python -I -S -c BOOTSTRAP RESULT_FD`.

It runs under `python -I -S`: no site module, so no .pth hooks (they are code) and a 3x faster start; the
parent passes its site-packages directories instead. It reads one JSON line from stdin ({"nonce",
"limits", "site_packages"}), points stdin at /dev/null, applies hard resource
limits, announces "started" on the result fd, runs ./program.py as __main__ and, only if the whole program
returned, writes "passed <nonce>". It then leaves with os._exit, so the program's atexit handlers never run.
The nonce comes over a pipe that is gone before the program runs: it is not in the program, the
arguments, the environment or any file. (Code that deliberately searches this interpreter's memory could
still find it: the namespaces, uid and limits, not the nonce, are what contain such code.)
"""

SOURCE = r"""
def _bootstrap():
    import json, os, resource, sys
    fd = int(sys.argv[1])
    spec = json.loads(sys.stdin.readline())
    sys.path.extend(spec["site_packages"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(os.devnull)
    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value[0], value[1]))
    nonce, spec = spec["nonce"], None
    os.write(fd, b"started\n")
    with open("program.py", encoding="utf-8") as fh:
        code = compile(fh.read(), "program.py", "exec")
    sys.argv = ["program.py"]
    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException as e:
        flush()
        os.write(fd, ("raised " + type(e).__name__ + "\n").encode())
        os._exit(1)
    flush()
    os.write(fd, ("passed " + nonce + "\n").encode())
    os._exit(0)
_bootstrap()
"""
