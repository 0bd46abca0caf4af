"""`rephraser tokenize`: JSONL rows -> token files for fine-tuning (supersedes the study's rephrase_tokenize.py).

    rephraser tokenize --model PATH_OR_ID --in rephrase_gsm8k.jsonl --max-seq-len 1536 [--out X.tok]
        [--mask-prompt] [--partial] [--layout padded|ragged] [--on-overflow truncate|drop|error] [--debug]
    report = tokenize_file(TokenizeConfig(model=..., input=...))      # same thing from Python

Token semantics are the study's: the prompt is tokenized with BOS; the solution is tokenized separately,
its BOS removed and EOS appended; loss on every token unless --mask-prompt (then the prompt tokens get
the ignore bit); --partial keeps every other prompt token (even positions, BOS included). One fix: the
original dropped the solution's first token even when the tokenizer adds no BOS; we drop it only when
the tokenizer adds one. Rows are read and encoded in batches (the fast tokenizer encodes a batch in
parallel), streamed to disk; empty rows and over-long samples are counted and reported, never hidden.
Chat rows ({"messages": [...]}) are rendered with the tokenizer's chat template, loss on the assistant turns
only (rephraser.data.chat).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from rephraser import __version__
from rephraser.config import check_choice, check_positive
from rephraser.data.chat import encode_chat
from rephraser.data.encode import batch_encoder, encode_distinct
from rephraser.data.rows import RowReader
from rephraser.data.tokfile import LAYOUTS, MAX_SEQ_LEN, TokenFileWriter, companion_paths, token_dtype
from rephraser.errors import ConfigError, InputError
from rephraser.modelref import resolve_model

OVERFLOW_ACTIONS = ("truncate", "drop", "error")


@dataclass
class TokenizeConfig:
    """Tokenize a JSONL file of training rows into .tok/.msk/.idx token files."""

    model: str
    """model or tokenizer: a local directory or a Hugging Face hub id"""
    input: str = field(metadata={"flags": ("--in",)})
    """rows to tokenize: .jsonl or .jsonl.gz"""
    max_seq_len: int = 1536
    """longest sample kept, in tokens (padded width)"""
    out: str | None = None
    """output .tok path (default: the input's name with .tok)"""
    mask_prompt: bool = False
    """no loss on prompt tokens (the study trained on them)"""
    partial: bool = False
    """keep every other prompt token, as the study's --partial"""
    layout: Literal["padded", "ragged"] = "padded"
    """padded = the study's format"""
    on_overflow: Literal["truncate", "drop", "error"] = "truncate"
    """samples longer than --max-seq-len: cut, skip or stop (all counted)"""
    batch_size: int = 1000
    """rows encoded per tokenizer call"""
    debug: bool = False
    """print the first sample decoded"""

    def __post_init__(self):
        check_positive("max_seq_len", self.max_seq_len, maximum=MAX_SEQ_LEN)
        check_positive("batch_size", self.batch_size)
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("on_overflow", self.on_overflow, OVERFLOW_ACTIONS)
        if self.out is not None and not str(self.out).endswith(".tok"):
            raise ConfigError(f"out: must end in .tok, got {self.out!r}")

    def out_path(self) -> Path:
        if self.out:
            return Path(self.out)
        name = Path(self.input).name
        for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".gz"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return Path(self.input).with_name(name + ".tok")


@dataclass(frozen=True)
class SpecialIds:
    bos: int | None
    eos: int
    pad: int  # what padded rows are filled with: UNK as the study did, else PAD, else EOS
    adds_bos: bool  # does encoding with special tokens put BOS first?

    @classmethod
    def of(cls, tokenizer, model: str) -> SpecialIds:
        if tokenizer.eos_token_id is None:
            raise InputError(model, "the tokenizer has no eos_token; training samples must end in EOS")
        pad = next(i for i in (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None)
        bos = tokenizer.bos_token_id
        adds_bos = bos is not None and tokenizer("")["input_ids"][:1] == [bos]
        return cls(bos, tokenizer.eos_token_id, pad, adds_bos)


def encode_sample(prompt_ids, solution_ids, specials: SpecialIds, partial: bool = False, mask_prompt: bool = False):
    """The study's sample: prompt (with BOS) + solution (BOS removed) + EOS, and the ignore mask."""
    prompt_ids = list(prompt_ids)[::2] if partial else list(prompt_ids)
    solution_ids = list(solution_ids)
    if specials.adds_bos and solution_ids[:1] == [specials.bos]:
        solution_ids = solution_ids[1:]
    ids = np.array(prompt_ids + solution_ids + [specials.eos], dtype=np.int64)
    ignore = np.zeros(len(ids), dtype=bool)
    if mask_prompt:
        ignore[: len(prompt_ids)] = True
    return ids, ignore


@dataclass
class TokenizeReport:
    paths: dict
    lines: int = 0
    samples: int = 0
    tokens: int = 0
    longest: int = 0
    blank_lines: int = 0
    empty_lines: list[int] = field(default_factory=list)
    overflow_lines: list[int] = field(default_factory=list)
    overflow_tokens_cut: int = 0

    def summary(self, cfg: TokenizeConfig) -> str:
        over = len(self.overflow_lines)
        action = {"truncate": f"truncated ({self.overflow_tokens_cut} tokens cut)", "drop": "dropped"}.get(
            cfg.on_overflow, ""
        )
        lines = [
            f"read {self.lines} lines: wrote {self.samples} samples, {self.tokens} tokens (longest {self.longest})",
            f"empty rows skipped: {len(self.empty_lines)}"
            + (f" (lines {_preview(self.empty_lines)})" if self.empty_lines else ""),
            f"over {cfg.max_seq_len} tokens: {over}"
            + (f" {action} (lines {_preview(self.overflow_lines)})" if over else ""),
        ]
        if self.blank_lines:
            lines.append(f"blank lines ignored: {self.blank_lines}")
        lines.append("wrote " + ", ".join(str(p) for p in self.paths.values()))
        return "\n".join(lines)


def _preview(items: list[int], n: int = 10) -> str:
    return ", ".join(map(str, items[:n])) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def load_tokenizer(model: str):
    from transformers import AutoTokenizer  # slow import: only when a tokenizer is needed

    try:
        model = resolve_model(model)
    except ConfigError as e:
        raise InputError(model, f"cannot load a tokenizer: {str(e).rsplit(': ', 1)[-1]}") from None
    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise InputError(model, f"cannot load a tokenizer: {e}") from None


def check_not_input(input_path, tok_path) -> None:
    """Refuse outputs that would overwrite the input (`--in x.tok --out x.tok`, `--in x.msk --out x.tok`)."""
    source = Path(input_path)
    for path in companion_paths(tok_path).values():
        if path.resolve() == source.resolve() or (path.exists() and source.exists() and os.path.samefile(path, source)):
            raise InputError(source, f"the output {path} would overwrite the input: choose another --out")


def tokenize_file(cfg: TokenizeConfig, tokenizer=None, log=print) -> TokenizeReport:
    """Tokenize `cfg.input` into token files; all outputs appear together at the end, or none do."""
    check_not_input(cfg.input, cfg.out_path())
    reader = RowReader(cfg.input)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.model)
    specials = SpecialIds.of(tokenizer, cfg.model)
    vocab_size = len(tokenizer)
    try:
        writer = TokenFileWriter(cfg.out_path(), cfg.layout, cfg.max_seq_len, token_dtype(vocab_size), specials.pad)
    except OSError as e:
        raise InputError(cfg.out_path(), f"cannot write the output here: {e.strerror or e}") from None
    report = TokenizeReport(paths=writer.paths)
    encode = batch_encoder(tokenizer)
    with writer:
        rows = tqdm(reader, desc=f"tokenize {Path(cfg.input).name}", unit=" rows", disable=None)
        try:
            for batch in _batches(rows, cfg.batch_size):
                kept = [r for r in batch if not r.is_empty]
                report.empty_lines += [r.line for r in batch if r.is_empty]
                if kept:
                    _encode_batch(kept, encode, tokenizer, specials, vocab_size, cfg, writer, report)
            report.lines, report.blank_lines = reader.lines, reader.blank_lines
            writer.commit(_sidecar(cfg, tokenizer, specials, reader, report))
        except OSError as e:  # disk full, permissions: nothing was published (the writer removes its temp files)
            raise InputError(cfg.out_path(), f"cannot write the output: {e.strerror or e}") from None
    log(report.summary(cfg))
    if cfg.debug and report.samples:
        _print_first_sample(cfg, tokenizer, log)
    return report


def _batches(iterable, size: int):
    it = iter(iterable)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _encoded(rows, encode, tokenizer, specials, cfg):
    """(row, ids, ignore) in order: plain rows encoded as one batch, chat rows through the chat template."""
    plain = [r for r in rows if not r.messages]
    prompts = encode_distinct(encode, [r.prompt for r in plain]) if plain else []
    solutions = encode([r.solution for r in plain]) if plain else []
    by_line = {
        r.line: encode_sample(p, s, specials, cfg.partial, cfg.mask_prompt)
        for r, p, s in zip(plain, prompts, solutions)
    }
    for row in rows:
        yield (
            row,
            *(encode_chat(tokenizer, row.messages, (cfg.input, row.line)) if row.messages else by_line[row.line]),
        )


def _encode_batch(rows, encode, tokenizer, specials, vocab_size, cfg, writer, report) -> None:
    samples = []
    for row, ids, ignore in _encoded(rows, encode, tokenizer, specials, cfg):
        if len(ids) and int(ids.max()) >= vocab_size:
            raise InputError(cfg.input, f"token id {int(ids.max())} >= vocabulary size {vocab_size}", row.line)
        report.longest = max(report.longest, len(ids))
        if len(ids) > cfg.max_seq_len:
            if cfg.on_overflow == "error":
                raise InputError(
                    cfg.input,
                    f"{len(ids)} tokens > --max-seq-len {cfg.max_seq_len} (use --on-overflow truncate|drop)",
                    row.line,
                )
            report.overflow_lines.append(row.line)
            if cfg.on_overflow == "drop":
                continue
            report.overflow_tokens_cut += len(ids) - cfg.max_seq_len
            ids, ignore = ids[: cfg.max_seq_len], ignore[: cfg.max_seq_len]
        samples.append((ids, ignore))
        report.tokens += len(ids)
    writer.add_batch([ids for ids, _ in samples], [ignore for _, ignore in samples])
    report.samples += len(samples)


def _sidecar(cfg, tokenizer, specials, reader, report) -> dict:
    return {
        "created_by": f"rephraser {__version__}",
        "tokenizer": {
            "name_or_path": cfg.model,
            "class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "bos_id": specials.bos,
            "eos_id": specials.eos,
            "unk_id": tokenizer.unk_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "adds_bos": specials.adds_bos,
        },
        "source": {"path": os.path.abspath(cfg.input), "sha256": reader.sha256},
        "config": asdict(cfg),
        "counts": {
            "lines": report.lines,
            "samples": report.samples,
            "tokens": report.tokens,
            "longest_before_overflow_handling": report.longest,
            "blank_lines": report.blank_lines,
            "empty_skipped": len(report.empty_lines),
            "empty_lines": report.empty_lines,
            "overflow": len(report.overflow_lines),
            "overflow_action": cfg.on_overflow,
            "overflow_lines": report.overflow_lines,
            "overflow_tokens_cut": report.overflow_tokens_cut,
        },
    }


def _print_first_sample(cfg, tokenizer, log) -> None:
    from rephraser.data.tokfile import TokenFile

    sample = TokenFile(cfg.out_path())[0]
    log(f"--- sample 0: {len(sample.ids)} tokens, {int(sample.ignore.sum())} without loss ---")
    log(tokenizer.decode(sample.ids))
    if sample.ignore.any():
        log(f"--- loss only on: ---\n{tokenizer.decode(sample.ids[~sample.ignore])}")
