"""A tiny random LlamaForCausalLM saved with a tokenizer: an ordinary HF directory for tests (no hub).
head_dim 32 by default: vLLM's CPU attention has no kernel for head_dim 16.

    path = build_tiny_llama(tokenizer, "dir/tiny", hidden=64, layers=2)
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_llama(
    tokenizer, out_dir: str | Path, hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_chat_llama(base_dir: str | Path, out_dir: str | Path, prompts: tuple[str, str]) -> dict:
    """An instruct-style variant of a tiny model: ChatML special tokens and chat template, and two EOS ids in
    its generation config. The weights are nudged so that greedy decoding of prompts[0] emits `<|im_end|>`
    (a special token that is not the EOS) after some text, and the second EOS id is a token that greedy
    decoding of prompts[1] reaches after some text: both stops are then exercised deterministically.
    Returns {"path", "im_end", "second_eos"}."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")

    def greedy(prompt: str, n: int = 12) -> list[int]:
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id
            )
        return out[0, ids.input_ids.shape[1] :].tolist()

    with torch.no_grad():
        model.lm_head.weight[im_end] = -10.0 * model.lm_head.weight[:im_end].mean(0)  # never chosen ...
        target = greedy(prompts[0])[3]
        for scale in (1.2, 1.5, 2.0, 3.0):  # ... until it outscores the token greedy decoding picks at step 3
            model.lm_head.weight[im_end] = scale * model.lm_head.weight[target]
            emitted = greedy(prompts[0])
            if im_end in emitted and emitted.index(im_end) >= 2:
                break
        else:
            raise RuntimeError("could not make the tiny model emit <|im_end|>")
    second = greedy(prompts[1])
    second_eos = next(
        t for position, t in enumerate(second) if position >= 2 and t != im_end and t not in second[:position]
    )
    model.generation_config.eos_token_id = [tok.eos_token_id, second_eos]
    model.generation_config.pad_token_id = tok.pad_token_id
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"path": out, "im_end": im_end, "second_eos": second_eos}
