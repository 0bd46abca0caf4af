"""The greedy-until contract on decoded text: every stop string honoured, wherever token boundaries fall.

    cut_at_stops("42\\n\\nQuestion: ...", ["Question:", "\\n\\n"]) -> "42"
    hits_stop(text, stops) -> True once any stop occurs (also inside a single token, or across several)

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
