"""Batch encoding that gives exactly `tokenizer(texts)["input_ids"]`, faster for fast tokenizers.

    encode = batch_encoder(tokenizer)
    encode(["a", "b"]) -> [[1, 64], [1, 65]]

For a tokenizer backed by the `tokenizers` library we call its Rust `encode_batch_fast` (no offsets, no
Python BatchEncoding objects: 1.5x here on 2 cores) after applying what transformers' own call applies
(no truncation, no padding, its split_special_tokens setting), so the ids are the same; tests compare
against `tokenizer(text)` row by row. Other tokenizers (sentencepiece/Python ones) use their own call.
"""

from __future__ import annotations

from collections.abc import Callable


def batch_encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return lambda texts: list(tokenizer(texts)["input_ids"])

    def encode(texts: list[str]) -> list[list[int]]:
        backend.no_truncation()
        backend.no_padding()
        backend.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=True)]

    return encode


def encode_distinct(encode, texts: list[str]) -> list[list[int]]:
    """Encode each distinct text once (the LMSYS files' prompts are all empty)."""
    distinct = list(dict.fromkeys(texts))
    ids = dict(zip(distinct, encode(distinct)))
    return [ids[t] for t in texts]
