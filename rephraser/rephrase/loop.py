"""The attempt loop: ask, measure the overlap, check the meaning, ask again with the reason, at most max_attempts.

    finish_items(items, preset, backend, cfg, store)     # every item ends in store.finish(record)

Each round sends every pending item once (the openai backend keeps `concurrency` requests in flight and hands on
each reply as it arrives; vLLM and code-ast answer the whole round at once). A reply is accepted when it is whole
(not cut at max_tokens), its longest run of words shared with the original (normalised as n-gram decontamination
does, rephraser.overlap) is below max_shared_words and the preset's meaning check passes; otherwise the
conversation continues with the reason. The meaning check takes every reply that has arrived and passed the
overlap test since the last check, at once (HumanEval runs them in one sandbox pool), while the other requests
stay in flight. An item that never passes is recorded with the reason of its last attempt (overlap, check,
truncated, empty, api_error) and left out of the exports.

A record is final (written to progress.jsonl) the moment its item is decided: accepted, or rejected at its last
attempt; a kill loses only replies that were rejected and would be asked again anyway. A record whose last
attempt was an API failure is not final (rephraser.rephrase.store): a rerun asks again, from a new conversation,
and the new record carries the tokens the earlier one spent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from rephraser.overlap import OverlapMeter, words
from rephraser.rephrase import prompts


@dataclass
class Pending:
    item: object
    meter: OverlapMeter
    messages: list[dict]
    history: list[dict] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0


def finish_items(items, preset, backend, cfg, store, log=print) -> None:
    mode = "translate" if cfg.translate else "paraphrase"
    template = prompts.template(preset.kind, mode, cfg.prompt_file)
    pending = [_pending(i, template, cfg, store.done.get(i.index)) for i in items]
    for attempt in range(cfg.max_attempts):
        if not pending:
            break
        last = attempt == cfg.max_attempts - 1
        still, accepted = _round(pending, attempt, last, preset, backend, cfg, store)
        log(f"attempt {attempt + 1}: {accepted} accepted, {len(still)} still pending")
        pending = still


def _pending(item, template: str, cfg, earlier: dict | None) -> Pending:
    p = Pending(item, OverlapMeter(item.text), prompts.first_messages(template, item.text, cfg.translate))
    if earlier is not None:  # asked again after an API failure: what the item has cost stays in its record
        p.prompt_tokens, p.completion_tokens = earlier["prompt_tokens"], earlier["completion_tokens"]
    return p


def _round(pending: list[Pending], attempt: int, last: bool, preset, backend, cfg, store) -> tuple[list, int]:
    """One attempt for every pending item, each recorded as it is decided: (items still pending, accepted)."""
    still: list[Pending] = []
    accepted = 0

    def rejected(p: Pending) -> None:
        if last:
            store.finish(_record(p, "", backend, cfg))
        else:
            still.append(p)

    batches = _reply_batches(backend, [p.item for p in pending], [p.messages for p in pending], attempt)
    with contextlib.closing(batches):  # an error here cancels the requests still in flight
        for batch in batches:
            candidates = []
            for k, reply in batch:
                p = pending[k]
                candidate = _screen(p, reply, attempt, preset, cfg)
                if candidate is None:
                    rejected(p)
                else:
                    candidates.append((p, *candidate))
            items, texts = [c[0].item for c in candidates], [c[2] for c in candidates]
            reasons = preset.check(items, texts, cfg.translate) if candidates else []
            for (p, raw, text, entry), reason in zip(candidates, reasons):
                if reason:
                    p.history.append({**entry, "outcome": "check", "detail": reason})
                    p.messages = prompts.retry_messages(p.messages, raw, prompts.check_feedback(reason))
                    rejected(p)
                    continue
                p.history.append({**entry, "outcome": "accepted"})
                store.finish(_record(p, text, backend, cfg))
                accepted += 1
    return sorted(still, key=lambda p: p.item.index), accepted  # the next round in the original order


def _reply_batches(backend, items, conversations, attempt):
    """[(position, Reply), ...] batches: as they arrive (openai), or the whole round in one (vllm, code-ast)."""
    if hasattr(backend, "replies"):
        yield from backend.replies(items, conversations, attempt)
    else:
        yield list(enumerate(backend.generate(items, conversations, attempt)))


def _screen(p: Pending, reply, attempt: int, preset, cfg) -> tuple[str, str, dict] | None:
    """Everything but the meaning check: (raw reply, cleaned text, overlap entry) for a candidate, else None (the
    attempt is in the history and, unless the request failed, the conversation continues with the reason)."""
    p.prompt_tokens += reply.prompt_tokens
    p.completion_tokens += reply.completion_tokens
    number = attempt + 1
    if reply.error:
        p.history.append({"attempt": number, "outcome": "api_error", "detail": reply.error})
        return None
    raw = reply.text or ""
    if reply.truncated:
        why = f"it was cut off at the length limit ({cfg.max_tokens} tokens); give the whole text, no longer"
        p.history.append(
            {"attempt": number, "outcome": "truncated", "detail": f"the reply was cut at {cfg.max_tokens} tokens"}
        )
        p.messages = prompts.retry_messages(p.messages, raw, prompts.check_feedback(why))
        return None
    text = preset.clean(raw)
    if not text.strip():
        p.history.append({"attempt": number, "outcome": "empty", "detail": "the reply was empty"})
        p.messages = prompts.retry_messages(p.messages, raw, prompts.check_feedback("the reply was empty"))
        return None
    run = p.meter.measure(text)
    entry = {"attempt": number, "shared_words": run.words, "shared_chars": run.chars}
    if not run.passes(cfg.max_shared_words):
        shared = " ".join(words(text)[run.span[0] : run.span[1]])
        p.history.append({**entry, "outcome": "overlap", "detail": f"shares {run.words} words: {shared}"})
        p.messages = prompts.retry_messages(p.messages, raw, prompts.overlap_feedback(run.words, shared))
        return None
    return raw, text, entry


def _record(p: Pending, rephrased: str, backend, cfg) -> dict:
    last = p.history[-1] if p.history else {"outcome": "api_error", "detail": "no attempt was made"}
    best = min((h for h in p.history if "shared_words" in h), key=lambda h: h["shared_words"], default={})
    return {
        "index": p.item.index,
        "id": p.item.id,
        "original": p.item.text,
        "rephrased": rephrased,
        "status": "accepted" if rephrased else "failed",
        "reason": None if rephrased else last["outcome"],
        "detail": None if rephrased else last.get("detail"),
        "attempts": len(p.history),
        "shared_words": (last if rephrased else best).get("shared_words"),
        "shared_chars": (last if rephrased else best).get("shared_chars"),
        "backend": backend.name,
        "model": backend.model,
        "translate": cfg.translate,
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "history": p.history,
    }
