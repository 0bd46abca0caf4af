"""Stream the rows of a training set, whatever it is stored as, with errors that name the file and line.

    source = TrainingSource("data.jsonl.gz", field="text", skip_bad_lines=False)
    for row, text in source: ...          # row = 0-based position among the rows kept
    source.skipped, source.reasons, source.rows, source.fingerprint()

A path ending in .jsonl / .jsonl.gz / .json is read line by line; .parquet through pyarrow's row groups;
anything else that is not a file is taken as a Hugging Face dataset name ("name", "name:config", optionally
"@split", default train) and streamed with `datasets`. The text is found by rephraser.detect.fields
(`--train-field`: a name, a dotted path, chat turns). A row without text there (null, a number, a missing
field), a line that is not JSON, a text that is not valid Unicode (a lone surrogate from a JSON escape, which no
encoder, judge or output file accepts) and the cut-off end of a truncated gzip stream are bad rows: an error
naming the file and line (for parquet and datasets, the 1-based row), or with skip_bad_lines skipped and counted
with their line numbers and reasons. Empty strings are kept (they match nothing). What can be checked before
a pass is checked when the source is made: the file exists, its compression matches its name, a parquet file
has the field with a type that can hold text. Nothing is held in memory beyond a batch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from rephraser.detect.fields import BadValue, TextField
from rephraser.digest import sha256_file
from rephraser.errors import InputError
from rephraser.log import get_logger

log = get_logger("rephraser.detect")
GZIP_MAGIC = b"\x1f\x8b"
READER_VERSION = 2  # how rows become texts (fields.py); part of the embedding cache's key
COMMIT = re.compile(r"[0-9a-f]{40}")


class TrainingSource:
    def __init__(self, spec: str, field: str = "text", skip_bad_lines: bool = False):
        self.spec, self.field, self.skip_bad_lines = spec, field, skip_bad_lines
        try:
            self.text_field = TextField(field)
        except ValueError as e:
            raise InputError(spec, str(e)) from None
        self.path = Path(spec)
        self.kind = self._kind()
        self.skipped: list[int] = []
        self.reasons: Counter = Counter()
        self.rows = 0
        self._builder = None
        if self.kind == "jsonl":
            self._check_compression()
        elif self.kind == "parquet":
            self._check_parquet()

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

    def _check_compression(self) -> None:
        with open(self.path, "rb") as fh:
            head = fh.read(2)
        named_gz = self.path.name.endswith(".gz")
        if named_gz and head and head != GZIP_MAGIC:
            raise InputError(self.spec, f"named .gz but not gzip-compressed (it starts with {head!r}): rename it")
        if not named_gz and head == GZIP_MAGIC:
            raise InputError(self.spec, "gzip-compressed but not named .gz: rename it to .jsonl.gz")

    def _check_parquet(self) -> None:
        import pyarrow.parquet as pq

        try:
            schema = pq.ParquetFile(self.path).schema_arrow
        except Exception as e:  # not parquet, truncated footer: one line with the cause
            raise InputError(self.spec, f"not a readable parquet file ({type(e).__name__}: {e})") from None
        why = self.text_field.check_arrow(schema)
        if why:
            raise InputError(self.spec, why, field=self.field)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        """Rows in order; `rows`, `skipped` and `reasons` are set when a pass reaches the end (a pass stopped
        early, such as fetching a few rows by position, leaves them as the last full pass found them)."""
        self._pass_skipped: list[int] = []
        self._pass_reasons: Counter = Counter()
        reader = {"jsonl": self._jsonl, "parquet": self._parquet, "hub": self._hub}[self.kind]
        row = 0
        for text in reader():
            yield row, text
            row += 1
        self.rows, self.skipped, self.reasons = row, self._pass_skipped, self._pass_reasons

    def _bad(self, line: int, message: str, reason: str, field: str | None = None):
        if not self.skip_bad_lines:
            raise InputError(
                self.spec, f"{message} (or pass --skip-bad-lines to skip and count such lines)", line, field
            )
        self._pass_skipped.append(line)
        self._pass_reasons[reason] += 1

    def _text(self, line: int, row) -> str | None:
        """The row's text, or None after recording it as bad (or raising)."""
        try:
            text = self.text_field.text(row)
        except BadValue as e:
            self._bad(line, str(e), "no text at the field", self.field)
            return None
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                self._bad(line, f"not valid Unicode text ({e.reason} at character {e.start})", "invalid Unicode")
                return None
        return text

    def _jsonl(self) -> Iterator[str]:
        opener = gzip.open if self.path.name.endswith(".gz") else open
        line = 0
        with opener(self.path, "rb") as fh:
            try:
                for line, raw in enumerate(fh, start=1):
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError) as e:
                        self._bad(line, f"not a valid JSON line ({str(e)[:80]})", "not a valid JSON line")
                        continue
                    if not isinstance(obj, dict):
                        self._bad(line, f"a JSON {type(obj).__name__}, not an object", "not a JSON object")
                        continue
                    text = self._text(line, obj)
                    if text is not None:
                        yield text
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # the stream ends early or is corrupt
                self._bad(
                    line + 1,
                    f"the gzip stream is cut short or corrupt after line {line} ({e}): a truncated file?",
                    "truncated or corrupt gzip stream",
                )

    def _parquet(self) -> Iterator[str]:
        import pyarrow.parquet as pq

        column = self.text_field.steps[0]
        position = 0
        batches = pq.ParquetFile(self.path).iter_batches(columns=[column], batch_size=4096)
        while True:
            try:
                batch = next(batches, None)
            except (OSError, ValueError) as e:  # a corrupt page: pyarrow says so as OSError / ArrowInvalid
                raise InputError(self.spec, f"unreadable after row {position} ({type(e).__name__}: {e})") from None
            if batch is None:
                return
            for value in batch.column(0).to_pylist():
                position += 1
                text = self._text(position, {column: value})
                if text is not None:
                    yield text

    def _dataset_builder(self):
        """The dataset's builder, made once: it pins the revision it resolved, so every pass reads the same data."""
        if self._builder is None:
            import datasets

            name, _, _ = self.spec.partition("@")
            name, _, config = name.partition(":")
            try:
                self._builder = datasets.load_dataset_builder(name, config or None)
            except Exception as e:  # offline, unknown dataset: one line with the cause
                raise InputError(
                    self.spec,
                    f"not a file, and not loadable as a Hugging Face dataset ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                ) from None
        return self._builder

    def _hub(self) -> Iterator[str]:
        split = self.spec.partition("@")[2] or "train"
        try:
            stream = self._dataset_builder().as_streaming_dataset(split=split)
        except Exception as e:  # an unknown split
            raise InputError(self.spec, f"cannot stream split {split!r} ({type(e).__name__}: {e})") from None
        for position, row in enumerate(stream, start=1):
            text = self._text(position, row)
            if text is not None:
                yield text

    def fingerprint(self) -> str | None:
        """What identifies the rows for the embedding cache: the file's content (a dataset: the commit its builder
        resolved), how rows become texts (field, reader version, skipping). None when the data cannot be
        identified (a dataset loaded from a local cache or a script without a commit): then nothing is cached."""
        if self.kind == "hub":
            revision = str(getattr(self._dataset_builder(), "hash", None) or "")
            if not COMMIT.fullmatch(revision):
                return None
            content = f"{self.spec}@{revision}"
        else:
            content = sha256_file(self.path)
        key = f"{content}\0{self.field}\0{self.skip_bad_lines}\0{READER_VERSION}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]
