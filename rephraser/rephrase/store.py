"""The output directory of `rephraser rephrase`: resumable progress, then the final files, each written whole.

    store = Store(out_dir, cfg)           # locks the directory; refuses another configuration; reads progress
    store.done -> {index: record}         # the latest record of every item an earlier (interrupted) run decided
    todo = store.unfinished(items)        # the items to (re)do; refuses a record made from another original
    store.finish(record)                  # appended to progress.jsonl and flushed to disk at once
    store.publish(...)                    # records.jsonl, train.jsonl, task/, report.json (temp name, then rename)

progress.jsonl is append-only, one decided item per line (a later line for the same item replaces an earlier
one); a line cut short by a kill is ignored (that item is simply done again). A record is final, never requested
again, unless its last attempt was an API failure (the endpoint failing is not an answer about the item: a rerun
asks again). A record is reused only for the item it was made from: one whose `original` differs from the
current item's text (the benchmark data changed under the directory) stops the run, naming the line.
config.yaml records the configuration the directory was made with; a rerun with another (anything but the
operational settings: concurrency, timeouts, the endpoint's address) is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import yaml

from rephraser.atomic import atomic_write_text
from rephraser.config import differences, save_config
from rephraser.errors import ConfigError, InputError
from rephraser.locking import output_lock

PROGRESS = "progress.jsonl"
NOT_FINAL = ("api_error",)  # reasons a failed record is asked again for on a rerun


def is_final(record: dict) -> bool:
    return record["status"] == "accepted" or record["reason"] not in NOT_FINAL


class Store:
    def __init__(self, out_dir: str | Path, cfg):
        self.folder = Path(out_dir)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(output_lock(self.folder, "rephrase run"))
        self._check_config(cfg)
        save_config(cfg, self.folder / "config.yaml")
        self.lines: dict[int, int] = {}  # index -> the progress line its record is on
        self.done: dict[int, dict] = self._read_progress()
        self._progress = open(self.folder / PROGRESS, "a", encoding="utf-8")

    def _check_config(self, cfg) -> None:
        saved = self.folder / "config.yaml"
        if not saved.is_file():
            return
        before = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
        now = cfg.identity()
        changed = differences({k: before.get(k) for k in now}, now)
        if changed:
            listed = "; ".join(changed)
            raise ConfigError(
                f"out: {self.folder} was made with another configuration ({listed}); rerun with the same "
                "settings to resume, or choose another --out"
            )

    def _read_progress(self) -> dict[int, dict]:
        path = self.folder / PROGRESS
        done: dict[int, dict] = {}
        if not path.is_file():
            return done
        lines = path.read_text(encoding="utf-8").split("\n")
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if k >= len(lines) - 2:  # the last line, cut short by a kill: that item is done again
                    continue
                raise ConfigError(
                    f"{path}:{k + 1}: corrupt progress line; remove the directory to start over"
                ) from None
            done[record["index"]] = record
            self.lines[record["index"]] = k + 1
        if lines and lines[-1].strip():  # an unterminated last line: rewrite the file without it
            atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done.values()))
            self.lines = {index: n + 1 for n, index in enumerate(done)}
        return done

    def unfinished(self, items) -> list:
        """The items to rephrase now: those without a final record. A record made from another original text
        than the item's is refused (resuming would publish a rephrase of something else under its index)."""
        path = self.folder / PROGRESS
        for item in items:
            record = self.done.get(item.index)
            if record is not None and record["original"] != item.text:
                raise InputError(
                    path,
                    f"item {item.index} ({item.id}) was rephrased from another text than the current item's: the "
                    "benchmark data changed since this directory was made; remove it or choose another --out",
                    line=self.lines.get(item.index),
                    field="original",
                )
        return [i for i in items if i.index not in self.done or not is_final(self.done[i.index])]

    def finish(self, record: dict) -> None:
        self.done[record["index"]] = record
        self._progress.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._progress.flush()
        os.fsync(self._progress.fileno())

    def publish(self, records: list[dict], train_texts: list[str], report: dict) -> None:
        atomic_write_text(
            self.folder / "records.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        )
        atomic_write_text(
            self.folder / "train.jsonl",
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in train_texts),
        )
        atomic_write_text(self.folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._progress.close()
        self._lock.close()
