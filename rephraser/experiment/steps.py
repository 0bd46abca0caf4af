"""The experiment's steps, each the project's own command in a subprocess, each skipped once complete.

    steps = Steps(exp_dir)
    steps.run("tokenize/rephrased", command, done=lambda: path.exists())   # runs unless done() already holds

A step is complete when its outputs are (the tokenizer's sidecar, the trainer's exported model, lm-eval's result
file plus our marker); an interrupted step is simply run again (the trainer then resumes from its last
checkpoint). Every command, its wall time and its exit status are kept in steps.json for the report.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.errors import RephraserError


class StepFailed(RephraserError):
    """A step's command exited with an error; its log says why."""


class Steps:
    def __init__(self, folder: Path, log=print):
        self.folder, self.log = folder, log
        self.path = folder / "steps.json"
        self.record = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, name: str, command: list[str], done, env: dict | None = None) -> bool:
        """Run `command` unless `done()`; True if it ran now. Output goes to logs/<name>.log."""
        if done():
            self.log(f"[{name}] complete, skipped")
            return False
        log_file = self.folder / "logs" / f"{name.replace('/', '_')}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"[{name}] {shlex.join(command)}")
        start = time.monotonic()
        with open(log_file, "w") as fh:
            status = subprocess.run(
                command, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            ).returncode
        seconds = time.monotonic() - start
        self.record[name] = {"command": shlex.join(command), "seconds": round(seconds, 1), "exit_status": status}
        atomic_write_text(self.path, json.dumps(self.record, indent=2) + "\n")
        if status != 0 or not done():
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise StepFailed(f"step {name} failed (exit status {status}); see {log_file}: " + " | ".join(tail))
        self.log(f"[{name}] done in {seconds:.0f} s")
        return True


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]
