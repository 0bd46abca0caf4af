"""Stream the rows of a training set, whatever it is stored as, with errors that name the file and line.

    source = TrainingSource("data.jsonl.gz", field="text", skip_bad_lines=False)
    for row, text in source: ...          # row = 0-based position among the rows kept
    source.skipped, source.rows, source.fingerprint()

A path ending in .jsonl / .jsonl.gz / .json is read line by line (a bad line is an error naming the file and
line, or, with skip_bad_lines, skipped and counted with its line number); .parquet through pyarrow's row
groups; anything else that is not a file is taken as a Hugging Face dataset name ("name", "name:config",
optionally "@split", default train) and streamed with `datasets`. Rows whose field is empty are kept (they
match nothing). Nothing is held in memory beyond a batch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from rephraser.digest import sha256_file
from rephraser.errors import InputError


class TrainingSource:
    def __init__(self, spec: str, field: str = "text", skip_bad_lines: bool = False):
        self.spec, self.field, self.skip_bad_lines = spec, field, skip_bad_lines
        self.path = Path(spec)
        self.kind = self._kind()
        self.skipped: list[int] = []
        self.rows = 0

    def _kind(self) -> str:
        name = self.path.name
        if name.endswith((".jsonl", ".jsonl.gz", ".json")):
            if not self.path.is_file():
                raise InputError(self.spec, "no such file")
            return "jsonl"
        if name.endswith(".parquet"):
            if not self.path.is_file():
                raise InputError(self.spec, "no such file")
            return "parquet"
        if self.path.exists():
            raise InputError(self.spec, "not a .jsonl, .jsonl.gz or .parquet file")
        return "hub"

    def __iter__(self) -> Iterator[tuple[int, str]]:
        """Rows in order; `rows` and `skipped` are set when a pass reaches the end (a pass stopped early, such as
        fetching a few rows by position, leaves them as the last full pass found them)."""
        self._pass_skipped: list[int] = []
        reader = {"jsonl": self._jsonl, "parquet": self._parquet, "hub": self._hub}[self.kind]
        row = 0
        for text in reader():
            yield row, text
            row += 1
        self.rows, self.skipped = row, self._pass_skipped

    def _bad(self, line: int, message: str, field: str | None = None):
        if not self.skip_bad_lines:
            raise InputError(
                self.spec, f"{message} (or pass --skip-bad-lines to skip and count such lines)", line, field
            )
        self._pass_skipped.append(line)

    def _jsonl(self) -> Iterator[str]:
        opener = gzip.open if self.path.name.endswith(".gz") else open
        with opener(self.path, "rb") as fh:
            for line, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    self._bad(line, f"not a valid JSON line ({str(e)[:80]})")
                    continue
                value = obj.get(self.field) if isinstance(obj, dict) else None
                if not isinstance(value, str):
                    keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
                    self._bad(line, f"missing or not text (row keys: {keys}); choose it with --train-field", self.field)
                    continue
                yield value

    def _parquet(self) -> Iterator[str]:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(self.path)
        if self.field not in table.schema_arrow.names:
            raise InputError(
                self.spec, f"no column {self.field!r} (columns: {table.schema_arrow.names}); use --train-field"
            )
        for batch in table.iter_batches(columns=[self.field], batch_size=4096):
            for value in batch.column(0).to_pylist():
                yield value if isinstance(value, str) else ""

    def _hub(self) -> Iterator[str]:
        import datasets

        name, _, split = self.spec.partition("@")
        name, _, config = name.partition(":")
        try:
            stream = datasets.load_dataset(name, config or None, split=split or "train", streaming=True)
        except Exception as e:  # offline, unknown dataset: one line with the cause
            raise InputError(
                self.spec,
                f"not a file, and not loadable as a Hugging Face dataset ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:160]})",
            ) from None
        for row in stream:
            if self.field not in row:
                raise InputError(self.spec, f"no field {self.field!r} (fields: {sorted(row)}); use --train-field")
            yield row[self.field] if isinstance(row[self.field], str) else ""

    def fingerprint(self) -> str:
        """What identifies the data for the embedding cache: the file's content (or the dataset's name), the field."""
        content = sha256_file(self.path) if self.kind != "hub" else self.spec
        return hashlib.sha256(f"{content}\0{self.field}\0{self.skip_bad_lines}".encode()).hexdigest()[:32]
