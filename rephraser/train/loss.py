"""The training loss without the [tokens, vocab] logits tensor: hidden states, then cross-entropy in chunks.

    wrapped = CausalLMLoss(model, chunk_tokens=2048)      # accelerate.prepare(wrapped): DDP / FSDP2 see one module
    loss_sum = wrapped(input_ids=..., labels=..., position_ids=...)   # sum over loss tokens (IGNORE = -100)

HF's CausalLM forward returns logits for every position ([B, W, vocab]; 8 x 1536 x 32 000 fp32 is 1.6 GB before
the backward). Here the decoder gives hidden states, only positions that carry a label are kept, and the LM head
plus the fp32 cross-entropy run over `chunk_tokens` of them at a time under activation checkpointing: each
chunk's logits are recomputed in the backward instead of being stored, so peak memory holds one chunk's logits.
The sum (and its gradients) equal the full computation within fp32 rounding (tests/test_train.py). Models that
post-process logits in their forward (Gemma's final_logit_softcapping, Cohere's logit_scale) get the same here.
Packed rows carry restarting position_ids and no attention mask: transformers builds the per-sample causal mask
for the attention implementation in use (sdpa / eager mask, flex BlockMask, flash-attention varlen).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

IGNORE = -100


class CausalLMLoss(torch.nn.Module):
    def __init__(self, model, chunk_tokens: int = 2048):
        super().__init__()
        self.model = model  # the causal LM (LoRA layers, when used, are injected into it by peft)
        self.chunk_tokens = chunk_tokens
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.logit_scale = getattr(config, "logit_scale", None)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, **inputs) -> torch.Tensor:
        hidden = self.model.get_decoder()(input_ids=input_ids, use_cache=False, **inputs).last_hidden_state
        targets = labels[:, 1:].reshape(-1)
        states = hidden[:, :-1].reshape(-1, hidden.size(-1))
        keep = targets != IGNORE
        states, targets = states[keep], targets[keep]
        head = self.model.get_output_embeddings()
        if not self.chunk_tokens or len(targets) <= self.chunk_tokens:
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
