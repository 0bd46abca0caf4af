"""Meaning checks that every benchmark's rephrase check starts with: a reply that is no rephrase at all.

    reason = generic_reason(original, candidate, translate=None)   # None, or why the candidate is rejected

A refusal ("I'm sorry, I cannot ...") or a reply far shorter or longer than the original keeps no meaning, even
when it happens to keep the numbers ("I'm sorry, I cannot do that. 16 2" once passed GSM-8K's number check);
an original that asks something must still ask something. Benchmarks add their own checks (numbers kept, options
not restated, tests passing) after these. Translations are checked for refusals only (another language's length
and wording differ too much for the other two).
"""

from __future__ import annotations

import re

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
REFUSAL = re.compile(
    r"(?i)\b(?:i'?m sorry|i am sorry|i apologi[sz]e|sorry,? (?:but )?i"
    r"|i (?:can ?not|can't|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|do|comply|provide|rephrase|rewrite|translate|fulfil|complete)"
    r"|as an ai\b|as a language model)"
)
ASKS = re.compile(
    r"(?i)\?|\b(?:how|what|which|who|whom|whose|when|where|why|determine|calculate|compute|find|work out|figure out"
    r"|evaluate|estimate|express|identify|solve|state|give|list|name|select|choose|complete|write|return|implement)\b"
)
# Word-count ratio of a paraphrase to its original. The LMSYS GSM-8K rephrases span 0.20-1.79 (median 1.04); the
# bounds reject only replies that cannot be the same text (a fragment, or an essay around it).
MIN_RATIO, MAX_RATIO = 0.2, 4.0


def numbers(text: str) -> list[str]:
    """The numbers of a text, commas and a final period removed ("1,200." -> "1200")."""
    return [n.replace(",", "").rstrip(".") for n in NUMBER.findall(text)]


def refusal(text: str) -> str | None:
    found = REFUSAL.search(text)
    return f"it is a refusal, not a rephrase ({found.group(0)!r})" if found else None


def length_reason(original: str, candidate: str) -> str | None:
    before, after = len(original.split()), len(candidate.split())
    if before < 5:  # too short to judge a ratio
        return None
    ratio = after / before
    if ratio < MIN_RATIO:
        return f"it is too short to carry the same meaning ({after} words for {before})"
    if ratio > MAX_RATIO:
        return f"it is too long to be a rephrase ({after} words for {before})"
    return None


def question_form_reason(original: str, candidate: str) -> str | None:
    if ASKS.search(original) and not ASKS.search(candidate):
        return "it no longer asks anything (the original asks a question)"
    return None


def generic_reason(original: str, candidate: str, translate: str | None = None) -> str | None:
    if not candidate.strip():
        return "the reply was empty"
    if translate:
        return refusal(candidate)
    return refusal(candidate) or length_reason(original, candidate) or question_form_reason(original, candidate)


def dropped_numbers(original: str, candidate: str) -> str | None:
    """GSM-8K's check, and --task's where the text has numbers: every number of the original survives."""
    kept = set(numbers(candidate))
    missing = [n for n in dict.fromkeys(numbers(original)) if n not in kept]
    return f"dropped the number(s) {', '.join(missing)}" if missing else None
