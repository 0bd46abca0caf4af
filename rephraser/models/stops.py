"""The greedy-until contract on decoded text: every stop string honoured, wherever token boundaries fall.

    cut_at_stops("42\\n\\nQuestion: ...", ["Question:", "\\n\\n"]) -> "42"
    hits_stop(text, stops) -> True once any stop occurs (also inside a single token, or across several)
    stop_token_ids(tokenizer, stops, generation_config) -> ids that end generation: every EOS id the model's
        generation config lists (Llama-3 and Qwen list several), and stop strings that are special tokens
        (`<|im_end|>`, `</s>`), which decoding with skip_special_tokens would otherwise hide from the text

Stops are searched in the decoded continuation only (never the prompt), and the continuation is cut
before the EARLIEST occurrence of any of them (the study's patched greedy_until honoured only the first
stop string and crashed on multi-token ones).
"""

from __future__ import annotations


def cut_at_stops(text: str, stops: list[str]) -> str:
    positions = [text.find(s) for s in stops if s and s in text]
    return text[: min(positions)] if positions else text


def hits_stop(text: str, stops: list[str]) -> bool:
    return any(s and s in text for s in stops)


def eos_ids(tokenizer, generation_config=None) -> set[int]:
    """The tokenizer's EOS and every EOS id of the model's generation config."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    listed = getattr(generation_config, "eos_token_id", None)
    ids.update(listed if isinstance(listed, (list, tuple)) else [listed] if listed is not None else [])
    return {int(i) for i in ids}


def special_stop_ids(tokenizer, stops: list[str]) -> set[int]:
    """Ids of the stop strings that are single added/special tokens of this tokenizer."""
    added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
    return {int(added[s]) for s in stops if s in added}


def stop_token_ids(tokenizer, stops: list[str], generation_config=None) -> set[int]:
    return eos_ids(tokenizer, generation_config) | special_stop_ids(tokenizer, stops)


def cut_at_stop_ids(tokens: list[int], ids: set[int]) -> list[int]:
    """The tokens before the first one that ends generation."""
    for position, token in enumerate(tokens):
        if token in ids:
            return tokens[:position]
    return tokens
