"""The experiment's steps, each the project's own command in a subprocess, skipped only when it is complete AND was
made from the same inputs.

    steps = Steps(exp_dir)
    steps.run("tokenize/rephrased", command, inputs={"data": sha, ...}, complete=lambda: token_set_verifies())

A step is complete when its command exited 0 (recorded in steps.json, written after the exit: an interrupted step
has no record) and its outputs check out (`complete()`: the token set opens and verifies, the exported model is
there, lm-eval's result file exists). Its `inputs` (content hashes of what it reads, the settings it runs with) are
recorded with it: a complete step is skipped only when they are the same now; otherwise the run stops, naming what
changed, instead of reporting old outputs against new inputs. An interrupted step is run again (the trainer then
resumes from its last checkpoint). Every command, its wall time and its exit status are kept for the report.
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
from rephraser.config import differences
from rephraser.errors import ConfigError, RephraserError


class StepFailed(RephraserError):
    """A step's command exited with an error; its log says why."""


class Steps:
    def __init__(self, folder: Path, log=print):
        self.folder, self.log = folder, log
        self.path = folder / "steps.json"
        self.record = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def is_done(self, name: str, inputs: dict, complete, rerun_on_change: bool = False) -> bool:
        """True when the step completed before from these inputs; ConfigError when it completed from others
        (False instead, with `rerun_on_change`: a step whose outputs are an analysis of unchanged models, such as
        the detectors, is simply made again from the new inputs)."""
        before = self.record.get(name)
        if not before or before.get("exit_status") != 0 or not before.get("completed"):
            return False
        if not complete():
            return False  # its outputs are gone or broken: make them again
        changed = differences(before.get("inputs"), json.loads(json.dumps(inputs)))
        if changed and rerun_on_change:
            self.log(f"[{name}] its inputs changed ({'; '.join(changed[:3])}): made again")
            return False
        if changed:
            listed = "; ".join(changed[:6]) + (f"; ... ({len(changed)} in all)" if len(changed) > 6 else "")
            raise ConfigError(
                f"step {name} was completed from other inputs ({listed}): its outputs would be reported against "
                f"these. Rerun with what it was made from, or use another out"
            )
        return True

    def run(self, name: str, command: list[str], inputs: dict, complete, env: dict | None = None,
            rerun_on_change: bool = False) -> bool:  # fmt: skip
        """Run `command` unless the step is done; True if it ran now. Output goes to logs/<name>.log."""
        if self.is_done(name, inputs, complete, rerun_on_change):
            self.log(f"[{name}] complete, skipped")
            return False
        log_file = self.folder / "logs" / f"{name.replace('/', '_')}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"[{name}] {shlex.join(command)}")
        self.record.pop(name, None)  # not complete until it exits 0 and its outputs check out
        self._save()
        start = time.monotonic()
        with open(log_file, "w") as fh:
            env = {**os.environ, **(env or {})}
            status = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        seconds = time.monotonic() - start
        ok = status == 0 and complete()
        self.record[name] = {"command": shlex.join(command), "seconds": round(seconds, 1), "exit_status": status,
                             "completed": ok, "inputs": inputs}  # fmt: skip
        self._save()
        if not ok:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise StepFailed(f"step {name} failed (exit status {status}); see {log_file}: " + " | ".join(tail))
        self.log(f"[{name}] done in {seconds:.0f} s")
        return True

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.record, indent=2) + "\n")


def python_module(*args: str) -> list[str]:
    """Every step runs this interpreter (the experiment's own environment), never whatever is first on PATH."""
    return [sys.executable, "-m", *args]
