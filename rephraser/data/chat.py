"""Chat rows for instruct models: the tokenizer's own chat template, loss on the assistant turns only.

    ids, ignore = encode_chat(tokenizer, messages)     # ignore[k] is True where token k carries no loss

The conversation is rendered once with the chat template and tokenized once (no special tokens added: the
template writes them), so the ids are exactly what the model sees at inference. Each assistant turn's text is
what the template adds for it after the generation prompt (its content and the end-of-turn marker, e.g.
`...<|im_end|>\\n`), found by rendering the conversation up to the turn with and without it; a token carries
loss when it lies inside such a span (fast tokenizers' offset mapping). System, user and tool text, and the
template's assistant headers, carry none. Chat rows ignore --mask-prompt and --partial (they are always
assistant-only) and get no extra EOS (the template ends each turn).
"""

from __future__ import annotations

import numpy as np

from rephraser.errors import InputError


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """(the rendered conversation, character spans of the assistant turns' generated text)."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = (
            tokenizer.apply_chat_template(list(messages[:k]), tokenize=False, add_generation_prompt=True)
            if k
            else tokenizer.apply_chat_template([], tokenize=False, add_generation_prompt=True)
        )
        upto = tokenizer.apply_chat_template(list(messages[: k + 1]), tokenize=False)
        if not text.startswith(upto) or not upto.startswith(before):
            raise ValueError("the chat template does not render the conversation as a growing prefix")
        spans.append((len(before), len(upto)))
    return text, spans


def encode_chat(tokenizer, messages, where: tuple) -> tuple[np.ndarray, np.ndarray]:
    path, line = where
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(
            path, f"a chat row, but the tokenizer {tokenizer.name_or_path!r} has no chat template", line, "messages"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise InputError(
            path, "chat rows need a fast tokenizer (its offset mapping places the assistant spans)", line, "messages"
        )
    try:
        text, spans = assistant_spans(tokenizer, messages)
    except ValueError as e:
        raise InputError(path, str(e), line, "messages") from None
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.array(encoded["input_ids"], dtype=np.int64)
    trained = np.zeros(len(ids), dtype=bool)
    for k, (start, end) in enumerate(encoded["offset_mapping"]):
        trained[k] = any(s <= start and end <= e and end > start for s, e in spans)
    return ids, ~trained
