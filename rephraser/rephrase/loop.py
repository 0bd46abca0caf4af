"""The attempt loop: ask, measure the overlap, check the meaning, ask again with the reason, at most max_attempts.

    finish_items(items, preset, backend, cfg, store)     # every item ends in store.finish(record)

Each round sends every pending item once (the openai backend keeps `concurrency` requests in flight; vLLM takes
them in one call). A reply is accepted when its longest run of words shared with the original (normalised as
n-gram decontamination does, rephraser.overlap) is below max_shared_words and the preset's meaning check
passes; otherwise the conversation continues with the reason. An item that never passes is recorded with the
reason of its last attempt (overlap, check, api_error, empty) and left out of the exports. A record is final
(written to progress.jsonl) the moment its item is decided.
"""

from __future__ import annotations

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
    pending = [Pending(i, OverlapMeter(i.text), prompts.first_messages(template, i.text, cfg.translate)) for i in items]
    for attempt in range(cfg.max_attempts):
        if not pending:
            break
        replies = backend.generate([p.item for p in pending], [p.messages for p in pending], attempt)
        candidates = []
        for p, reply in zip(pending, replies):
            p.prompt_tokens += reply.prompt_tokens
            p.completion_tokens += reply.completion_tokens
            if reply.error:
                p.history.append({"attempt": attempt + 1, "outcome": "api_error", "detail": reply.error})
                continue
            text = preset.clean(reply.text or "")
            if not text.strip():
                p.history.append({"attempt": attempt + 1, "outcome": "empty", "detail": "the reply was empty"})
                p.messages = prompts.retry_messages(
                    p.messages, reply.text or "", prompts.check_feedback("the reply was empty")
                )
                continue
            run = p.meter.measure(text)
            entry = {"attempt": attempt + 1, "shared_words": run.words, "shared_chars": run.chars}
            if not run.passes(cfg.max_shared_words):
                shared = " ".join(words(text)[run.span[0] : run.span[1]])
                p.history.append({**entry, "outcome": "overlap", "detail": f"shares {run.words} words: {shared}"})
                p.messages = prompts.retry_messages(p.messages, reply.text, prompts.overlap_feedback(run.words, shared))
                continue
            candidates.append((p, reply.text, text, entry))
        reasons = (
            preset.check([c[0].item for c in candidates], [c[2] for c in candidates], cfg.translate)
            if candidates
            else []
        )
        decided = set()
        for (p, raw, text, entry), reason in zip(candidates, reasons):
            if reason:
                p.history.append({**entry, "outcome": "check", "detail": reason})
                p.messages = prompts.retry_messages(p.messages, raw, prompts.check_feedback(reason))
                continue
            p.history.append({**entry, "outcome": "accepted"})
            store.finish(_record(p, text, backend, cfg))
            decided.add(id(p))
        pending = [p for p in pending if id(p) not in decided]
        log(f"attempt {attempt + 1}: {len(decided)} accepted, {len(pending)} still pending")
    for p in pending:
        store.finish(_record(p, "", backend, cfg))


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
