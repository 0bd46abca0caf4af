"""The training loss without the [tokens, vocab] logits tensor: hidden states, then cross-entropy in chunks.

    wrapped = CausalLMLoss(model, chunk_tokens=2048)      # accelerate.prepare(wrapped): DDP / FSDP2 see one module
    loss_sum = wrapped(input_ids=..., labels=..., position_ids=...)   # sum over loss tokens (IGNORE = -100)
    model_sum = wrapped(..., reference=True)              # the same sum from the model's own forward(labels=...)
    check_chunked_loss(architecture, ours, model_sum, tokens, half_precision)   # ConfigError when they differ

HF's CausalLM forward returns logits for every position ([B, W, vocab]; 8 x 1536 x 32 000 fp32 is 1.6 GB before
the backward). Here the decoder gives hidden states, only positions that carry a label are kept, and the LM head
plus the fp32 cross-entropy run over `chunk_tokens` of them at a time under activation checkpointing: each
chunk's logits are recomputed in the backward instead of being stored, so peak memory holds one chunk's logits.
The sum (and its gradients) equal the full computation within fp32 rounding (tests/test_train.py).

Rebuilding the head this way knows only the logit post-processing named here (Gemma's final_logit_softcapping,
Cohere's logit_scale); an architecture that does something else in its forward (Granite's logits_scaling,
FalconH1's lm_head_multiplier, the next one) would silently train on another loss. So the trainer compares the
two at start-up (check_chunked_loss) and refuses a mismatch; `chunk_tokens=0` uses the model's own forward loss,
right for any architecture, at the cost of the full logits.
Packed rows carry restarting position_ids and no attention mask: transformers builds the per-sample causal mask
for the attention implementation in use (sdpa / eager mask, flex BlockMask, flash-attention varlen).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from rephraser.errors import ConfigError

IGNORE = -100

# How far the chunked sum may be from the model's own (|ours - model| <= RTOL * |model| + ATOL * loss tokens).
# fp32: the two differ only in GEMM shape and summation order, measured <= 2e-7 relative (tiny Llama, Gemma2,
# Cohere); 1e-4 leaves 500x. bf16/fp16: logits carry 8 (11) mantissa bits and the paths may round the
# post-processing differently (Gemma2's forward softcaps in bf16, ours in fp32): measured up to 4e-4 relative on
# a 37-token row under CPU bf16 autocast, noise that shrinks with more tokens; 1e-2 leaves 25x, and ATOL keeps a
# near-zero loss (a memorised row after a resume) from turning rounding into a refusal. A missed post-processing
# step is far larger: a tiny random Granite with logits_scaling 4 is 17 % off, a trained one more.
TOLERANCE = {"fp32": (1e-4, 1e-6), "half": (1e-2, 1e-3)}


class CausalLMLoss(torch.nn.Module):
    def __init__(self, model, chunk_tokens: int = 2048):
        super().__init__()
        self.model = model  # the causal LM (LoRA layers, when used, are injected into it by peft)
        self.chunk_tokens = chunk_tokens
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.logit_scale = getattr(config, "logit_scale", None)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, reference: bool = False, **inputs) -> torch.Tensor:
        if reference or not self.chunk_tokens:
            return self._model_loss_sum(input_ids, labels, **inputs)
        hidden = self.model.get_decoder()(input_ids=input_ids, use_cache=False, **inputs).last_hidden_state
        targets = labels[:, 1:].reshape(-1)
        states = hidden[:, :-1].reshape(-1, hidden.size(-1))
        keep = targets != IGNORE
        states, targets = states[keep], targets[keep]
        head = self.model.get_output_embeddings()
        if len(targets) <= self.chunk_tokens:
            return self._loss_sum(head, states, targets)
        total = states.new_zeros((), dtype=torch.float32)
        for start in range(0, len(targets), self.chunk_tokens):
            end = start + self.chunk_tokens
            total = total + checkpoint(self._loss_sum, head, states[start:end], targets[start:end], use_reentrant=False)
        return total

    def _loss_sum(self, head, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = head(states).float()
        if self.logit_scale is not None:
            logits = logits * self.logit_scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return torch.nn.functional.cross_entropy(logits, targets, reduction="sum")

    def _model_loss_sum(self, input_ids: torch.Tensor, labels: torch.Tensor, **inputs) -> torch.Tensor:
        """The model's own forward(labels=...), whatever it does to its logits. HF returns the MEAN over the loss
        tokens (labels shifted by one, IGNORE skipped); times their count it is the sum the trainer normalises."""
        out = self.model(input_ids=input_ids, labels=labels, use_cache=False, **inputs)
        count = int((labels[:, 1:] != IGNORE).sum())
        if count == 0:  # HF's mean over no token is NaN; a zero tied to every weight keeps DDP/FSDP in step
            return out.logits.sum() * 0.0
        return out.loss * count


def architecture(wrapped: CausalLMLoss) -> str:
    return type(wrapped.model).__name__


def check_chunked_loss(architecture: str, ours: float, model: float, tokens: int, half_precision: bool) -> float:
    """ConfigError when the chunked loss sum is not the model's own (TOLERANCE); else their relative difference."""
    rtol, atol = TOLERANCE["half" if half_precision else "fp32"]
    difference = abs(ours - model)
    if difference > rtol * abs(model) + atol * tokens:
        raise ConfigError(
            f"loss_chunk_tokens: the chunked loss is {ours / tokens:.6f} per token on the first micro-batch (its first "
            f"row, {tokens} loss tokens), {architecture}'s own forward(labels=...) gives {model / tokens:.6f}: this "
            "architecture post-processes its logits in a way the chunked loss does not reproduce; train it with "
            "--loss-chunk-tokens 0 (the model's own loss, full logits)"
        )
    return difference / max(abs(model), 1e-12)
