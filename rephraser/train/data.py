"""Training data: token files -> a deterministic plan of micro-batches -> model inputs.

    data = TrainData(["a.tok", "b.tok"]); data.check_vocab(model_vocab_size)
    plan = EpochPlan(data.lengths, max_seq_len, packing=True, seed=42)
    rows = plan.micro_batch(epoch, index, rank, num_processes, rows_per_micro_batch)   # lists of sample ids
    batch = collate(data, rows, max_seq_len, packing=True)                            # tensors for the model

Packing: samples are shuffled (seed) and packed once into rows of up to max_seq_len tokens; each epoch
shuffles the rows (seed, epoch). Positions restart per sample and no attention mask is passed: transformers
recognises packed rows from restarting position_ids and builds the per-sample causal mask itself, in the form
the attention implementation wants (a 4-D mask for sdpa/eager, a BlockMask for flex_attention, cu_seqlens for
flash-attention), so no [B, W, W] mask is built here. Without packing every sample is its own row padded to
max_seq_len, as the study did. The plan depends only on the data, the seed and the
row budget, so a resumed run (or another process count with the same global batch) sees the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rephraser.data.tokfile import TokenFile
from rephraser.errors import InputError

IGNORE = -100


class TrainData:
    def __init__(self, paths: list[str]):
        self.files = [TokenFile(p) for p in paths]  # InputError on missing, unreadable or mixed sets
        if not any(len(f) for f in self.files):
            raise InputError(paths[0], "the token files hold no samples")
        for f in self.files:
            if len(f) and f.loss_tokens() == 0:
                raise InputError(
                    f.paths["tok"],
                    "has no token to train on (every token is masked, or every sample is "
                    "a single token): the loss would be 0 at every step",
                )
        self.owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(self.files)])
        self.local = np.concatenate([np.arange(len(f)) for f in self.files])
        self.lengths = np.concatenate([f.lengths() for f in self.files]).astype(np.int64)

    def identity(self) -> list[dict]:
        """Resolved path and content hashes of every file (checked against their sidecars): what a resumed
        run must find again, so a re-tokenized file at the same path is not mistaken for the same data."""
        return [{"path": str(f.paths["tok"].resolve()), "sha256": f.verify()} for f in self.files]

    def truncation(self, max_seq_len: int) -> tuple[int, int]:
        """(samples longer than max_seq_len, tokens those lose) when cut to max_seq_len."""
        over = self.lengths[self.lengths > max_seq_len]
        return len(over), int((over - max_seq_len).sum())

    def __len__(self) -> int:
        return len(self.lengths)

    def sample(self, i: int):
        return self.files[self.owner[i]][int(self.local[i])]

    def check_vocab(self, vocab_size: int) -> None:
        """Before any step: the tokenizer the files were made with, and every id, must fit the model."""
        for f in self.files:
            made_with = f.meta.get("tokenizer", {}).get("vocab_size")
            if made_with is not None and made_with > vocab_size:
                raise InputError(
                    f.paths["tok"],
                    f"made with a tokenizer of {made_with} tokens, but the model's "
                    f"vocabulary has {vocab_size}: tokenize with the model's own tokenizer",
                )
            top = int(np.max(f.tokens)) if f.tokens.size else 0
            real_top = top if top < vocab_size or f.mask is None else _max_real_id(f)  # padding may use any id
            if real_top >= vocab_size:
                raise InputError(
                    f.paths["tok"], f"token id {real_top} is out of range for a vocabulary of {vocab_size}"
                )


def _max_real_id(f: TokenFile) -> int:
    real = (np.asarray(f.mask) & 1).astype(bool)
    return int(np.max(np.asarray(f.tokens)[real])) if real.any() else 0


@dataclass
class EpochPlan:
    lengths: np.ndarray
    max_seq_len: int
    packing: bool
    seed: int

    def __post_init__(self):
        # Pack once (samples in a seeded random order), then shuffle the rows each epoch: every epoch has the
        # same number of rows, so steps follow from epochs exactly and every sample is seen once per epoch.
        order = np.random.default_rng(self.seed).permutation(len(self.lengths))
        self.packed = (
            _pack(order, np.minimum(self.lengths, self.max_seq_len), self.max_seq_len)
            if self.packing
            else [[int(i)] for i in order]
        )

    def rows(self, epoch: int) -> list[list[int]]:
        """Sample ids per row for one epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.packed))
        return [self.packed[i] for i in order]

    def micro_batches_per_epoch(self, num_processes: int, rows_per_micro_batch: int) -> int:
        """Per process; the last global micro-batch may be partial (ranks without rows get a dummy row)."""
        return math.ceil(len(self.rows(0)) / (num_processes * rows_per_micro_batch))

    def micro_batch(
        self, epoch: int, index: int, rank: int, num_processes: int, rows_per_micro_batch: int
    ) -> list[list[int]]:
        per_global = num_processes * rows_per_micro_batch
        if getattr(self, "_epoch", None) != epoch:  # every micro-batch of an epoch reuses its row order
            self._epoch, self._rows = epoch, self.rows(epoch)
        return self._rows[index * per_global : (index + 1) * per_global][rank::num_processes]


def _pack(order: np.ndarray, lengths: np.ndarray, budget: int) -> list[list[int]]:
    """Fill rows in shuffled order; a sample that does not fit starts the next row."""
    rows, row, used = [], [], 0
    for i in order:
        n = int(lengths[i])
        if row and used + n > budget:
            rows.append(row)
            row, used = [], 0
        row.append(int(i))
        used += n
    if row:
        rows.append(row)
    return rows


def collate(
    data: TrainData, rows: list[list[int]], max_seq_len: int, packing: bool, pad_id: int = 0, fixed_width: bool = False
) -> dict[str, torch.Tensor]:
    """Model inputs for one micro-batch. labels are the input ids with IGNORE where no loss is taken: tokens
    marked ignore, padding, and the first token of every sample (HF shifts labels by one, so that label is
    predicted from the previous sample's last token in a packed row). Packed rows are as wide as the widest
    row of the micro-batch, or always max_seq_len with fixed_width (one shape for torch.compile)."""
    if not rows:  # this rank has no rows in the epoch's last micro-batch: one token, no loss
        rows_ids = [[(np.array([pad_id]), np.array([True]))]]
    else:
        rows_ids = [[_truncated(data.sample(i), max_seq_len) for i in row] for row in rows]
    width = max_seq_len if not packing or fixed_width else max(sum(len(ids) for ids, _ in row) for row in rows_ids)
    input_ids = torch.full((len(rows_ids), width), pad_id, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE)
    position_ids = torch.zeros_like(input_ids)
    real = torch.zeros_like(input_ids, dtype=torch.bool)
    for r, row in enumerate(rows_ids):
        start = 0
        for ids, ignore in row:
            n = len(ids)
            input_ids[r, start : start + n] = torch.from_numpy(ids.astype(np.int64))
            # int64 first: token files are uint16/uint32, where -100 would wrap to 65436 / 4294967196
            lab = torch.from_numpy(np.where(ignore, IGNORE, ids.astype(np.int64)))
            lab[0] = IGNORE
            labels[r, start : start + n] = lab
            position_ids[r, start : start + n] = torch.arange(n)
            real[r, start : start + n] = True
            start += n
        if start < width:  # padding: positions restart, so it is one more packed "sample" (no labels)
            position_ids[r, start:] = torch.arange(width - start)
    if not packing:  # plain padded rows: a padding mask and the model's own positions, as the study
        return {"input_ids": input_ids, "labels": labels, "attention_mask": real.long()}
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def _truncated(sample, max_seq_len: int):
    return sample.ids[:max_seq_len], sample.ignore[:max_seq_len]


def loss_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that contribute to the loss (targets after the shift)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())
