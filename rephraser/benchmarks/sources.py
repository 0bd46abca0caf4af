"""Where benchmark data comes from: explicit path -> local mirror -> Hugging Face hub -> pinned download.

    path = explicit("metadata gsm8k_path", user_path)          # a path the user named: must exist
    found = first_file([("REPHRASER_DATA_DIR mirror", mirror_dir() / "gsm8k" / "test.jsonl")], tried)
    rows = from_hub("openai/gsm8k", "main", "test", tried)    # None when offline (recorded in `tried`)
    path = download(url, cache_dir() / ..., sha256)            # verified against the pin, then published whole
    texts = read_rephrased_texts(path)                         # an index-aligned file's "text" per line

A benchmark (rephraser/benchmarks/<name>/) says which files and hub datasets it needs; this module only knows
how to find them. A local mirror is a directory laid out like ../shared/data, named by REPHRASER_DATA_DIR (or a
benchmark's `data_dir`). A path the user names explicitly (lm-eval's --metadata, `data_dir`) must exist: it is
never silently replaced by another source. Every load logs where the data came from. When nothing resolves,
DataNotFound lists every source tried and how to supply the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

from rephraser.atomic import publish, temp_beside
from rephraser.errors import InputError, RephraserError
from rephraser.log import get_logger

log = get_logger("rephraser.data")


class DataNotFound(RephraserError):
    def __init__(self, what: str, tried: list[str], hint: str):
        lines = "\n".join(f"  - {t}" for t in tried)
        super().__init__(f"cannot find {what}; tried:\n{lines}\n{hint}")


def mirror_dir(data_dir: str | None = None) -> Path | None:
    """The local mirror: `data_dir` (named explicitly: must exist) or REPHRASER_DATA_DIR."""
    if data_dir:
        if not Path(data_dir).is_dir():
            raise InputError(data_dir, "data_dir: no such directory (named explicitly, so no other source is used)")
        return Path(data_dir)
    value = os.environ.get("REPHRASER_DATA_DIR")
    return Path(value) if value else None


def cache_dir() -> Path:
    """REPHRASER_CACHE, else $XDG_CACHE_HOME/rephraser, else ~/.cache/rephraser."""
    if os.environ.get("REPHRASER_CACHE"):
        return Path(os.environ["REPHRASER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rephraser"


def explicit(label: str, path: str | Path | None, kind: str = "file") -> Path | None:
    """A path the user named: it must exist, or the run stops (it is never replaced by another source)."""
    if path is None or path == "":
        return None
    exists = Path(path).is_dir() if kind == "directory" else Path(path).is_file()
    if not exists:
        raise InputError(path, f"{label}: no such {kind} (named explicitly, so no other source is used)")
    return Path(path)


def first_file(candidates: list[tuple[str, Path | None]], tried: list[str]) -> tuple[str, Path] | None:
    """The first candidate that is a file, as (label, path); every miss is recorded in `tried`."""
    for label, path in candidates:
        if path is None:
            tried.append(f"{label}: not set")
        elif path.is_file():
            return label, path
        else:
            tried.append(f"{label}: {path} (missing)")
    return None


def mirror_file(data_dir: str | None, *parts: str) -> tuple[str, Path | None]:
    """("REPHRASER_DATA_DIR mirror", its file at parts) for `first_file`."""
    mirror = mirror_dir(data_dir)
    return "REPHRASER_DATA_DIR mirror", (mirror.joinpath(*parts) if mirror else None)


def loaded(what: str, rows: list, source: str) -> list:
    log.info("%s: %d records from %s", what, len(rows), source)
    return rows


def read_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSONL file as an object (errors name the file and line)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(path, f"not valid JSON: {e.msg}", line_no) from None
    return rows


def download(url: str, dest: Path, sha256: str) -> Path:
    """`url` to `dest`, published only if its sha256 equals the pin."""
    tmp = temp_beside(dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            digest = hashlib.sha256()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise OSError(f"sha256 {digest.hexdigest()} != pinned {sha256}")
        return publish(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def from_hub(repo: str, name: str | None, split: str, tried: list[str]) -> list[dict] | None:
    """A split of a hub dataset, or None (offline, missing, hub error: recorded in `tried`)."""
    import datasets

    try:
        return list(datasets.load_dataset(repo, name, split=split))
    except Exception as e:  # offline, missing, or hub error: recorded, then the next source
        first = str(e).splitlines()[0][:160] if str(e) else ""
        tried.append(f"Hugging Face hub {repo} ({name}, {split}): {type(e).__name__}: {first}")
        return None


def read_rephrased_texts(path: str | Path) -> list[str]:
    """The "text" of every line of an index-aligned rephrased file (an empty text is a placeholder). A blank
    line, a corrupt line or a missing "text" is an error naming the file and line: skipping it would shift
    every later record onto the wrong original."""
    texts = []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                raise InputError(
                    path,
                    'blank line: records are aligned with the original by line, so a placeholder must be {"text": ""}',
                    line_no,
                )
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(path, f"not a valid JSON line ({e})", line_no) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise InputError(path, "expected an object with a string 'text'", line_no, "text")
            texts.append(obj["text"])
    return texts


def check_aligned(path, records: list, originals: int, what: str = "the original") -> None:
    """An index-aligned file must have exactly as many records as its original: one extra line shifts every
    later record onto another item's text."""
    if len(records) != originals:
        raise InputError(
            path,
            f"{len(records)} records, but {what} has {originals}: a rephrased file must be index-aligned with "
            "its original (record i rephrases item i)",
        )
