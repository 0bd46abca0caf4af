"""Per-token log-probabilities of texts under a causal LM: one decoder pass per batch, the LM head in chunks.

    seqs = encode(tokenizer, model, [item.text for item in items], ids=[item.id for item in items])
    stats = token_stats(model, seqs, batch_size=8, chunk_tokens=512, distribution=True)
    stats[i].logprobs   # log p(x_t | x_<t) for every token after the first (BOS as the tokenizer adds it)
    stats[i].mu, .sigma # mean and std of log p(z | x_<t) over z ~ p(. | x_<t) at those positions (mink++)
    stats[i].centred    # log p(x_t | x_<t) - mu_t, computed without the cancellation (see position_stats)

Batches are right-padded (real tokens never attend to padding under the causal mask, and their positions start
at 0), built from items of similar length. The decoder (the model's `base_model`) runs once per batch; the LM head
(`get_output_embeddings()`) is applied to at most `chunk_tokens` positions at a time, so a [positions, vocab]
logits tensor is never held whole. Applying the head ourselves skips whatever the model's own `forward` does to its
logits (Gemma-2's softcapping, Cohere's logit_scale, Granite's logits_scaling): `check_head` compares our logits
with the model's own forward on the first batch and refuses the model when they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rephraser.errors import InputError, RephraserError

CHECK_POSITIONS = 64  # positions of the first item compared with the model's own forward


@dataclass
class TokenStats:
    logprobs: np.ndarray  # [n] float64: log p(x_t | x_<t), t = 1 .. len-1
    mu: np.ndarray | None = None  # [n]: E_z[log p(z | x_<t)] under the model's next-token distribution
    sigma: np.ndarray | None = None  # [n]: its standard deviation
    centred: np.ndarray | None = None  # [n]: logprobs - mu, from the logits (see position_stats)


def vocab_size(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def encode(tokenizer, model, texts: list[str], ids: list[str], source: str = "items") -> list[list[int]]:
    """Token ids as the tokenizer makes them (special tokens included: BOS where it adds one). Refuses ids the
    model has no row for (a tokenizer that is not the model's) and texts longer than the model's positions."""
    seqs = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    size = vocab_size(model)
    top = max((max(s) for s in seqs if s), default=-1)
    if top >= size:
        raise RephraserError(
            f"tokenizer: produces token id {top}, but the model's LM head has {size} rows: the tokenizer does not "
            f"belong to this model ({getattr(tokenizer, 'name_or_path', '?')})"
        )
    limit = getattr(model.config, "max_position_embeddings", None)
    for n, (item_id, seq) in enumerate(zip(ids, seqs), 1):
        if limit and len(seq) > limit:
            raise InputError(
                source, f"{len(seq)} tokens, more than the model's {limit} positions (item {item_id!r})", n, "text"
            )
    return seqs


def position_stats(logits, targets, distribution: bool):
    """(chosen log-prob, mu, sigma, chosen - mu) per row of `logits` [C, V] (upcast to float32), mu = sum_z p(z)
    log p(z), sigma^2 = sum_z p(z) (log p(z) - mu)^2.

    log p(z) = logit_z - logsumexp, so log p(x) - mu = logit_x - E_p[logit] and sigma^2 = Var_p[logit]: both are
    computed from the logits, where the logsumexp (|log p| ~ log V, ~10) never enters. Subtracting mu from log p in
    float32 loses ~1e-6 of that magnitude, which 1 / sigma magnifies where the distribution is flat; the reference
    code's E[log p^2] - mu^2 loses more. Entries with p = 0 (logit -inf, e.g. a masked vocabulary row) add nothing
    instead of 0 * -inf = nan."""
    import torch

    logits = logits.float()
    lp = torch.log_softmax(logits, dim=-1)
    chosen = lp.gather(-1, targets[:, None])[:, 0]
    if not distribution:
        return chosen, None, None, None
    # The [C, V] work is memory-bound: in place, and dot products instead of product-then-sum temporaries (about
    # half the passes over memory of the masked form below). Only a row with p = 0 entries at a -inf or huge
    # negative logit needs that form: there 0 * -inf, or 0 * inf after squaring, makes the fast form's sigma nan.
    p = lp.exp_()  # lp is spent: `chosen` is a copy
    mean_logit = torch.linalg.vecdot(p, logits)
    sigma = torch.linalg.vecdot(p, (logits - mean_logit[:, None]).square_()).sqrt()
    if bool(torch.isnan(sigma).any()):  # a nan mean makes sigma nan too; masked entries (p = 0) add nothing
        live = p > 0
        mean_logit = torch.where(live, p * logits, 0.0).sum(-1)
        sigma = torch.where(live, p * (logits - mean_logit[:, None]) ** 2, 0.0).sum(-1).sqrt()
    centred = logits.gather(-1, targets[:, None])[:, 0] - mean_logit
    return chosen, chosen - centred, sigma, centred


def _decoder_and_head(model):
    base, head = model.base_model, model.get_output_embeddings()
    if base is model or head is None:
        raise RephraserError(
            f"{type(model).__name__}: cannot separate the decoder from the LM head, so its logits cannot be taken "
            "in chunks; use a causal LM with a base model and output embeddings"
        )
    return base, head


def _batch(seqs: list[list[int]], device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def batch_stats(model, seqs: list[list[int]], chunk_tokens: int, distribution: bool, check: bool = False):
    """TokenStats for each sequence of one batch; with `check`, `check_head` on its shortest sequence first."""
    import torch

    base, head = _decoder_and_head(model)
    ids, mask = _batch(seqs, model.device)
    with torch.no_grad():
        hidden = base(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        if check:
            row = min(range(len(seqs)), key=lambda r: len(seqs[r]))
            check_head(model, head, hidden[row], seqs[row])
        scored = mask[:, 1:].bool()  # position t predicts token t+1, for every real token after the first
        h, targets = hidden[:, :-1][scored], ids[:, 1:][scored]
        parts = [
            position_stats(head(h[s : s + chunk_tokens]), targets[s : s + chunk_tokens], distribution)
            for s in range(0, len(targets), chunk_tokens)
        ]
    columns = [_column(parts, j, distribution or j == 0) for j in range(4)]
    out, start = [], 0
    for seq in seqs:
        n = max(len(seq) - 1, 0)
        out.append(TokenStats(*(c[start : start + n] if c is not None else None for c in columns)))
        start += n
    return out


def _column(parts, j: int, wanted: bool):
    import torch

    if not wanted:
        return None
    return torch.cat([p[j] for p in parts]).double().cpu().numpy() if parts else np.zeros(0)


def check_head(model, head, hidden_row, seq: list[int]) -> None:
    """Our logits (the head on the decoder's last hidden state) against the model's own forward on the same
    tokens: a model that post-processes its logits (softcapping, scaling) would otherwise be scored on the wrong
    distribution without any sign of it."""
    import torch

    n = min(len(seq), CHECK_POSITIONS)
    ids = torch.tensor([seq[:n]], dtype=torch.long, device=model.device)
    theirs = torch.log_softmax(model(input_ids=ids, use_cache=False).logits[0].float(), -1)
    ours = torch.log_softmax(head(hidden_row[:n]).float(), -1)
    diff = float((theirs - ours).abs().max())
    tolerance = 1e-3 if next(model.parameters()).dtype == torch.float32 else 1e-1
    if not diff <= tolerance:
        raise RephraserError(
            f"{type(model).__name__}: the LM head applied to the decoder's output differs from the model's own "
            f"logits by up to {diff:.3g} nats (tolerance {tolerance:g}): this architecture post-processes its "
            "logits in forward (softcapping or scaling), which chunked scoring does not reproduce; it is refused "
            "rather than scored on the wrong distribution"
        )


def token_stats(model, seqs: list[list[int]], batch_size: int, chunk_tokens: int, distribution: bool, log=None):
    """TokenStats for every sequence, in the given order. Batches group sequences of similar length (longest
    first, so a memory problem shows at once); the first batch is checked against the model's own logits."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out: list[TokenStats | None] = [None] * len(seqs)
    for b, start in enumerate(range(0, len(order), batch_size)):
        rows = order[start : start + batch_size]
        for i, stats in zip(rows, batch_stats(model, [seqs[i] for i in rows], chunk_tokens, distribution, b == 0)):
            out[i] = stats
        if log and (b + 1) % 50 == 0:
            log(f"scored {start + len(rows)} of {len(seqs)} texts")
    return out
