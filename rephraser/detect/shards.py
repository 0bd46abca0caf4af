"""A training set stored as several files: a directory of shards or a glob, read as one source in file order.

    source = open_source("data/", field="text", skip_bad_lines=True)    # TrainingSource for one file or a dataset,
    source = open_source("data/part-*.jsonl.gz")                         # Shards for a directory or a glob
    for row, text in source: ...          # row ids: the files in name order, then their lines (what Ray numbers)
    source.shards                         # the TrainingSources, checked when opened (exist, compression, schema)

A directory holds the files in it (not below it) whose names end .jsonl, .jsonl.gz, .json or .parquet, sorted by
name; a glob (*, ?, [) the files it matches, sorted. Bad rows are named "file:line" (several files) and counted
as each file counts them. Both engines read a set this way: the local one through __iter__, the Ray one file
by file in its tasks (ray_engine.py), which keeps the same row ids.
"""

from __future__ import annotations

import glob
import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from rephraser.detect.training import TrainingSource
from rephraser.errors import InputError
from rephraser.log import get_logger

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def shard_files(spec: str) -> list[str] | None:
    """The files of a directory or glob, sorted; None for a single file or a dataset name. What a directory or
    glob holds besides (subdirectories, other names: `_SUCCESS`, `b.json.gz`, `c.JSONL`) is not read, and said."""
    path = Path(spec)
    if path.is_dir():
        entries = sorted(path.iterdir())
        files = [str(p) for p in entries if p.is_file() and p.name.endswith(SUFFIXES)]
        _say_ignored(spec, [p.name + ("/" if p.is_dir() else "") for p in entries if str(p) not in files])
        if not files:
            raise InputError(spec, f"a directory without training files (names ending {', '.join(SUFFIXES)})")
        return files
    if any(c in spec for c in "*?[") and not path.exists():  # a real file named run[1]/x.jsonl is that file
        matched = sorted(glob.glob(spec))
        files = [p for p in matched if Path(p).is_file()]
        _say_ignored(spec, [p + "/" for p in matched if p not in files])
        if not files:
            raise InputError(spec, "the pattern matches no file")
        return files
    return None


def _say_ignored(spec: str, names: list[str]) -> None:
    if names:
        get_logger("rephraser.detect").warning(
            "%s: %d entr%s not read (only files ending %s, not below it): %s",
            spec, len(names), "y" if len(names) == 1 else "ies", ", ".join(SUFFIXES), ", ".join(names[:10]),
        )  # fmt: skip


def open_source(spec: str, field: str = "text", skip_bad_lines: bool = False):
    files = shard_files(spec)
    if files is None:
        return TrainingSource(spec, field, skip_bad_lines)
    return Shards(spec, [TrainingSource(f, field, skip_bad_lines) for f in files])


class Shards:
    kind = "shards"

    def __init__(self, spec: str, shards: list[TrainingSource]):
        self.spec, self.shards = spec, shards
        self.field, self.skip_bad_lines = shards[0].field, shards[0].skip_bad_lines
        self.rows, self.skipped, self.reasons = 0, [], Counter()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        offset = 0
        for shard in self.shards:
            for row, text in shard:
                yield offset + row, text
            offset += shard.rows
        self.set_counts([(s.spec, s.rows, s.skipped, s.reasons) for s in self.shards])

    def set_counts(self, counts: list[tuple[str, int, list[int], Counter]]) -> None:
        """Rows, bad lines ("file:line") and reasons of a full pass, from every file's own counts, in file order."""
        self.rows = sum(rows for _, rows, _, _ in counts)
        self.skipped = [f"{spec}:{line}" for spec, _, lines, _ in counts for line in lines]
        self.reasons = sum((Counter(r) for _, _, _, r in counts), Counter())

    def fingerprint(self) -> str | None:
        prints = [s.fingerprint() for s in self.shards]
        if any(p is None for p in prints):
            return None
        return hashlib.sha256("\0".join(prints).encode()).hexdigest()[:32]
