"""The token-file format: `X.tok`, `X.msk`, `X.idx` (numpy .npy files) plus a `X.tok.json` sidecar.

    with TokenFileWriter("gsm8k.tok", layout="padded", max_seq_len=1536, dtype=np.uint16, pad_id=0) as w:
        w.add_batch(ids_list, ignore_list)  # samples: token ids and bool "no loss here" masks
        w.commit(meta)                      # all four files appear together, or none do
    tf = TokenFile("gsm8k.tok")             # also reads the study's own .tok/.idx/.msk files
    len(tf); tf[i].ids, tf[i].ignore        # real tokens only, padding removed

Layouts:
  padded  the study's MmapDataset, byte-compatible: .tok [N, max_seq_len] token ids (padding = pad_id),
          .msk int8 same shape (bit 0: real token, bit 1: ignore for loss; padding is 0b10 as in the
          original, whose ignore mask is padded with 1), .idx int64 arange(N+1).
  ragged  .tok and .msk 1-D (samples back to back, no padding), .idx int64 offsets, N+1 of them.
Token dtype: uint16 when every id of the vocabulary fits, else uint32 (the original's uint16 wraps
Llama-3 ids silently).

Files are streamed to temp files beside the outputs (each byte written once) and renamed at commit,
so a crash or an error leaves no partial output and a file larger than memory is never held in memory.
The sidecar records each file's size and sha256 and is published first: a set whose renames were cut
short (or a file replaced by hand) no longer matches its sidecar, and `TokenFile` refuses it (sizes at
every open; `verify()` compares the hashes, as the trainer does before it trains).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rephraser.atomic import make_dirs, publish, remove_dirs, temp_beside
from rephraser.digest import sha256_file
from rephraser.errors import InputError

FORMAT_VERSION = 2  # 2: the sidecar records each file's bytes and sha256 ("files")
DATA_FILES = ("tok", "msk", "idx")
MAX_SEQ_LEN = (
    1 << 22
)  # 4 M tokens: beyond any model's context; a larger value is a typo (and padded rows that wide OOM)
MASK_REAL = 0b01
MASK_IGNORE = 0b10
LAYOUTS = ("padded", "ragged")


def companion_paths(tok_path: str | os.PathLike) -> dict[str, Path]:
    """The .tok file's siblings; only the last suffix is replaced (the original replaced every '.tok')."""
    tok = Path(tok_path)
    if tok.suffix != ".tok":
        raise InputError(tok, "a token file's name must end in .tok")
    return {"tok": tok, "msk": tok.with_suffix(".msk"), "idx": tok.with_suffix(".idx"), "meta": Path(f"{tok}.json")}


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds ids 0..vocab_size-1."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)


@dataclass
class Sample:
    ids: np.ndarray  # real tokens only
    ignore: np.ndarray  # bool, True where the token is excluded from the loss


class TokenFileWriter:
    """Stream samples into temp files; `commit` writes the .npy files and the sidecar, then renames."""

    def __init__(self, tok_path, layout: str, max_seq_len: int, dtype, pad_id: int):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.paths = companion_paths(tok_path)
        self.layout, self.max_seq_len, self.pad_id = layout, max_seq_len, pad_id
        self.dtype = np.dtype(dtype)
        self._tmp: list[Path] = []
        self._created_dirs = make_dirs(self.paths["tok"].parent)
        self._staged_tok, self._staged_msk = self._temp_file("tok"), self._temp_file("msk")
        self._fh_tok, self._fh_msk = _open_npy_stream(self._staged_tok), _open_npy_stream(self._staged_msk)
        self.lengths: list[int] = []

    def _temp_file(self, tag: str) -> Path:
        path = temp_beside(self.paths["tok"], "." + tag)
        self._tmp.append(path)
        return path

    def add_batch(self, ids_list, ignore_list) -> None:
        """Append samples: id sequences and bool ignore masks of the same lengths."""
        lengths = [len(ids) for ids in ids_list]
        if self.layout == "padded" and lengths and max(lengths) > self.max_seq_len:
            raise ValueError(f"sample of {max(lengths)} tokens exceeds max_seq_len {self.max_seq_len}")
        if self.layout == "padded":
            tokens = np.full((len(lengths), self.max_seq_len), self.pad_id, dtype=self.dtype)
            mask = np.full((len(lengths), self.max_seq_len), MASK_IGNORE, dtype=np.int8)
            for row, (ids, ignore, n) in enumerate(zip(ids_list, ignore_list, lengths)):
                tokens[row, :n] = ids
                mask[row, :n] = np.where(ignore, MASK_REAL | MASK_IGNORE, MASK_REAL)
        else:
            tokens = np.concatenate(
                [np.asarray(ids, dtype=self.dtype) for ids in ids_list] or [np.zeros(0, self.dtype)]
            )
            ignore = np.concatenate([np.asarray(i, dtype=bool) for i in ignore_list] or [np.zeros(0, bool)])
            mask = np.where(ignore, MASK_REAL | MASK_IGNORE, MASK_REAL).astype(np.int8)
        self._fh_tok.write(tokens.tobytes())
        self._fh_msk.write(mask.tobytes())
        self.lengths.extend(lengths)

    def commit(self, meta: dict) -> dict[str, Path]:
        """Finish all files, then rename them into place together; returns the final paths."""
        n = len(self.lengths)
        if self.layout == "padded":
            shape = (n, self.max_seq_len)
            index = np.arange(n + 1, dtype=np.int64)
        else:
            index = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(self.lengths, out=index[1:])
            shape = (int(index[-1]),)
        _finish_npy_stream(self._fh_tok, self.dtype, shape)
        _finish_npy_stream(self._fh_msk, np.dtype(np.int8), shape)
        staged = {
            "tok": self._staged_tok,
            "msk": self._staged_msk,
            "idx": self._temp_file("idx"),
            "meta": self._temp_file("json"),
        }
        with open(staged["idx"], "wb") as fh:  # a handle: np.save(path) would append ".npy" to the temp name
            np.save(fh, index)
        files = {key: {"bytes": staged[key].stat().st_size, "sha256": sha256_file(staged[key])} for key in DATA_FILES}
        full_meta = {
            "format_version": FORMAT_VERSION,
            "layout": self.layout,
            "dtype": self.dtype.name,
            "max_seq_len": self.max_seq_len,
            "pad_id": self.pad_id,
            "num_samples": n,
            "files": files,
            **meta,
        }
        staged["meta"].write_text(json.dumps(full_meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _check_targets(self.paths)
        # The sidecar first: from here on, any mix of new and old files fails the sidecar's size/hash check.
        published = []
        try:
            for key in ("meta", "idx", "msk", "tok"):
                publish(staged[key], self.paths[key])
                published.append(key)
        except OSError as e:
            if published:
                raise InputError(
                    self.paths["tok"],
                    f"renaming the new files failed after {published} ({e}): the set is "
                    "incomplete (its sidecar no longer matches) - rerun rephraser tokenize",
                ) from None
            raise
        return self.paths

    def abort(self) -> None:
        for fh in (self._fh_tok, self._fh_msk):
            fh.close()
        for path in self._tmp:
            path.unlink(missing_ok=True)
        remove_dirs(self._created_dirs)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()


def _check_targets(paths: dict[str, Path]) -> None:
    """Before the first rename: every target must be replaceable by a file."""
    for path in paths.values():
        if path.is_dir():
            raise InputError(path, "is a directory: cannot write a token file there (choose another --out)")


# A .npy file is a header then the raw array. We reserve a fixed-size header, stream the data after it,
# and write the real header (whose shape we only know at the end) over the reserved bytes: one write of
# each byte, no copy, constant memory. numpy reads any header length that keeps the data 64-byte aligned.
_NPY_HEADER_BYTES = 128


def _open_npy_stream(path: Path):
    fh = open(path, "wb")
    fh.write(b"\0" * _NPY_HEADER_BYTES)
    return fh


def _finish_npy_stream(fh, dtype: np.dtype, shape: tuple) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    prefix = np.lib.format.magic(1, 0) + struct.pack("<H", _NPY_HEADER_BYTES - 10)
    padding = _NPY_HEADER_BYTES - len(prefix) - len(text) - 1
    if padding < 0:
        raise ValueError(f"shape {shape} does not fit the reserved .npy header")
    fh.seek(0)
    fh.write(prefix + text + b" " * padding + b"\n")
    fh.close()


class TokenFile:
    """Read-only view of a token file of either layout, memory-mapped; `tf[i]` gives a Sample.
    Refuses sets whose files do not belong together (sizes against the sidecar, shapes, index)."""

    def __init__(self, tok_path: str | os.PathLike):
        self.paths = companion_paths(tok_path)
        for key in ("tok", "idx"):
            if not self.paths[key].is_file():
                raise InputError(self.paths[key], "missing (a token file needs its .tok and .idx)")
        self.meta = _read_sidecar(self.paths["meta"])
        self._check_sidecar_sizes()
        try:
            self.tokens = np.lib.format.open_memmap(self.paths["tok"], mode="r")
            self.index = np.lib.format.open_memmap(self.paths["idx"], mode="r")
            has_mask = self.paths["msk"].is_file()
            self.mask = np.lib.format.open_memmap(self.paths["msk"], mode="r") if has_mask else None
        except ValueError as e:
            raise InputError(self.paths["tok"], f"not a readable .npy token file set: {e}") from None
        self.layout = "padded" if self.tokens.ndim == 2 else "ragged"
        self._check_shapes()
        self._check_ids()

    def _check_sidecar_sizes(self) -> None:
        for key, recorded in self.meta.get("files", {}).items():
            if (
                key in DATA_FILES
                and self.paths[key].is_file()
                and self.paths[key].stat().st_size != recorded.get("bytes")
            ):
                raise InputError(
                    self.paths[key],
                    f"does not belong with {self.paths['meta'].name} ({self.paths[key].stat().st_size} "
                    f"bytes, the sidecar says {recorded.get('bytes')}): the "
                    "set is incomplete or mixed; rerun rephraser tokenize",
                )

    def _check_shapes(self) -> None:
        if self.mask is None and self.layout == "padded":
            raise InputError(
                self.paths["msk"],
                "missing: a padded token file needs its mask (without it, padding "
                "would be trained on as if it were text)",
            )
        if self.mask is not None and self.mask.shape != self.tokens.shape:
            raise InputError(self.paths["msk"], f"shape {self.mask.shape} != tokens {self.tokens.shape}")
        if self.index.ndim != 1 or len(self.index) < 1:
            raise InputError(
                self.paths["idx"], f"expected a 1-D index with at least one entry, got shape {self.index.shape}"
            )
        if self.layout == "padded":
            if len(self.index) - 1 != self.tokens.shape[0]:
                raise InputError(
                    self.paths["idx"], f"index of {len(self.index)} entries does not match tokens {self.tokens.shape}"
                )
        else:
            index = np.asarray(self.index)
            if index[0] != 0 or np.any(np.diff(index) < 0) or index[-1] != len(self.tokens):
                raise InputError(
                    self.paths["idx"],
                    f"offsets must start at 0, never decrease and end at the {len(self.tokens)} "
                    f"tokens of {self.paths['tok'].name} (got {index[0]}..{index[-1]}, "
                    f"{int(np.sum(np.diff(index) < 0))} decreasing)",
                )
        expected = self.meta.get("num_samples")
        if expected is not None and expected != len(self):
            raise InputError(
                self.paths["tok"],
                f"holds {len(self)} samples, its sidecar says {expected}: the files do not belong together",
            )

    def _check_ids(self) -> None:
        if self.tokens.dtype.kind not in "ui":
            raise InputError(self.paths["tok"], f"token ids must be integers, got dtype {self.tokens.dtype}")
        if self.tokens.dtype.kind == "i" and self.tokens.size and int(np.min(self.tokens)) < 0:
            raise InputError(self.paths["tok"], f"negative token id {int(np.min(self.tokens))}")

    def verify(self) -> dict[str, str]:
        """sha256 of each file, checked against the sidecar's record when there is one (the study's own
        files have none). Returns {"tok": ..., "msk": ..., "idx": ...}: the content identity of the set."""
        digests = {key: sha256_file(self.paths[key]) for key in DATA_FILES if self.paths[key].is_file()}
        for key, recorded in self.meta.get("files", {}).items():
            if key in digests and recorded.get("sha256") != digests[key]:
                raise InputError(
                    self.paths[key],
                    f"content does not match {self.paths['meta'].name} (sha256 {digests[key][:12]}..., "
                    f"recorded {str(recorded.get('sha256'))[:12]}...): the set is mixed; rerun rephraser tokenize",
                )
        return digests

    def __len__(self) -> int:
        return len(self.index) - 1

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        if self.layout == "padded":
            ids, mask = self.tokens[i], self.mask[i]
        else:
            lo, hi = int(self.index[i]), int(self.index[i + 1])
            ids, mask = self.tokens[lo:hi], None if self.mask is None else self.mask[lo:hi]
        if mask is None:  # ragged without a mask: no padding and no ignore
            return Sample(np.asarray(ids), np.zeros(len(ids), dtype=bool))
        real = (mask & MASK_REAL).astype(bool)
        return Sample(np.asarray(ids[real]), (mask[real] & MASK_IGNORE).astype(bool))

    def lengths(self) -> np.ndarray:
        """Real tokens per sample, without reading the token ids."""
        if self.layout == "ragged":
            return np.diff(self.index)
        return (self.mask & MASK_REAL).astype(bool).sum(axis=1)

    def loss_tokens(self) -> int:
        """Tokens a model is trained on: real, not ignored, and not the first of their sample (nothing
        predicts it within the sample)."""
        if self.mask is None:
            return int(np.maximum(self.lengths() - 1, 0).sum())
        trained = (np.asarray(self.mask) & (MASK_REAL | MASK_IGNORE)) == MASK_REAL
        if self.layout == "padded":
            first = trained[:, 0] if trained.shape[1] else np.zeros(0, bool)  # real tokens start at column 0
        else:
            starts = np.asarray(self.index[:-1])[np.diff(self.index) > 0]
            first = trained[starts]
        return int(trained.sum() - first.sum())


def _read_sidecar(path: Path) -> dict:
    if not path.is_file():
        return {}  # the study's own files have no sidecar
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e}); remove it only if the token files are the study's own") from None
    if not isinstance(meta, dict):
        raise InputError(path, f"a token-file sidecar must be a JSON object, got {type(meta).__name__}")
    return meta
