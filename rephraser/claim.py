"""Claim an output directory for one configuration: one run at a time, and never a second configuration.

    with claim_dir(out, "experiment.yaml", cfg, identity=cfg.identity(), what="experiment"):
        ...   # the directory is locked, holds this configuration's record, and held none other before

Takes the directory's lock first (rephraser.locking: a second run on it stops at once), then compares the record
an earlier run left with this run's identity (the settings that define what is produced; operational ones such
as concurrency or the data mirror's path may change), naming every difference with both values, and writes the
record (the whole resolved configuration, atomically) only after the check. `train`, `rephrase` and `experiment`
all claim their output directories this way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import yaml

from rephraser.atomic import atomic_write_text
from rephraser.config import differences
from rephraser.errors import ConfigError
from rephraser.locking import output_lock


def read_record(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return data or {}


def check_record(folder: Path, record: str, identity: dict, what: str, hint: str) -> None:
    """ConfigError listing every difference between the recorded configuration and `identity`."""
    path = Path(folder) / record
    if not path.is_file():
        return
    before = read_record(path)
    now = json.loads(json.dumps(identity))  # tuples as lists, as the record holds them
    changed = differences({k: before.get(k) for k in now}, now)
    if changed:
        listed = "; ".join(changed[:8]) + (f"; ... ({len(changed)} in all)" if len(changed) > 8 else "")
        raise ConfigError(f"out: {folder} holds a {what} with another configuration ({listed}); {hint}")


def write_record(folder: Path, record: str, config) -> None:
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    text = (
        json.dumps(values, indent=2) + "\n"
        if record.endswith(".json")
        else yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
    )
    atomic_write_text(Path(folder) / record, text)


@contextlib.contextmanager
def claim_dir(
    folder,
    record: str,
    config,
    identity: dict,
    what: str,
    hint: str = "rerun with the same settings to resume, or choose another output directory",
):
    folder = Path(folder)
    with output_lock(folder, what) as lock:
        check_record(folder, record, identity, what, hint)
        write_record(folder, record, config)
        yield lock
