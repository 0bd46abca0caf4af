"""A tiny random LlamaForCausalLM saved with a tokenizer: an ordinary HF directory for tests (no hub).
head_dim 32 by default: vLLM's CPU attention has no kernel for head_dim 16.

    path = build_tiny_llama(tokenizer, "dir/tiny", hidden=64, layers=2)
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_llama(tokenizer, out_dir: str | Path, hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
