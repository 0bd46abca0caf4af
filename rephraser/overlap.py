"""The one n-gram overlap measure: what `rephraser rephrase`, `rephraser detect` and the experiment report share.

    normalise("Natalia sold 48 clips!")       -> "natalia sold 48 clips"   (lm-eval's decontamination rule)
    run = longest_shared_run(original, rephrase)
    run.words, run.chars                      # longest run of shared words / characters, after normalising
    run.span                                  # (start, end) word positions of that run in `rephrase`
    meter = OverlapMeter(original); meter.measure(attempt)   # the original's automata built once, for many attempts
    index = NgramIndex(test_texts, n=13)      # stream training rows through: index.matches(row) -> test ids

Normalising is lm-eval's janitor's (`Janitor.normalize_string`, GPT-3's 13-gram decontamination): ASCII
letters lowered, ASCII punctuation deleted, then split on whitespace; the study's 10-word test uses the
same words. A text "passes n-gram decontamination at n" when its longest shared run is below n words.

The longest common run is found with a suffix automaton of the original, walked by the other text: linear in
the two lengths (no n*m table). Building the automaton costs about three walks, so an OverlapMeter builds it
once per original and measures every attempt against it (bench/rephrase_speed.py). Written by hand because no
maintained library offers a longest common *substring over words*; rapidfuzz and difflib compare characters or
give matching blocks, not this.
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

_TABLE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)


def normalise(text: str) -> str:
    return " ".join(text.translate(_TABLE).split())


def words(text: str) -> list[str]:
    return text.translate(_TABLE).split()


class SuffixAutomaton:
    """The suffix automaton of a sequence of hashable tokens (words, or characters)."""

    def __init__(self, tokens: Sequence[Hashable]):
        self.next: list[dict] = [{}]
        self.link = [-1]
        self.length = [0]
        last = 0
        for token in tokens:
            last = self._extend(last, token)

    def _extend(self, last: int, token) -> int:
        nxt, link, length = self.next, self.link, self.length
        current = len(length)
        nxt.append({})
        link.append(0)
        length.append(length[last] + 1)
        state = last
        while state != -1 and token not in nxt[state]:
            nxt[state][token] = current
            state = link[state]
        if state != -1:
            target = nxt[state][token]
            if length[state] + 1 == length[target]:
                link[current] = target
            else:
                clone = len(length)
                nxt.append(dict(nxt[target]))
                link.append(link[target])
                length.append(length[state] + 1)
                while state != -1 and nxt[state].get(token) == target:
                    nxt[state][token] = clone
                    state = link[state]
                link[target] = link[current] = clone
        return current

    def longest_common(self, tokens: Sequence[Hashable]) -> tuple[int, int]:
        """(length, end) of the longest run of `tokens` that also occurs in the automaton's sequence;
        `end` is the exclusive end position in `tokens`."""
        nxt, link, length = self.next, self.link, self.length
        state, current, best, best_end = 0, 0, 0, 0
        for position, token in enumerate(tokens):
            while state and token not in nxt[state]:
                state = link[state]
                current = length[state]
            if token in nxt[state]:
                state = nxt[state][token]
                current += 1
            if current > best:
                best, best_end = current, position + 1
        return best, best_end


@dataclass(frozen=True)
class SharedRun:
    words: int
    chars: int
    span: tuple[int, int]  # word positions [start, end) of the longest shared word run, in the second text

    def passes(self, max_shared_words: int) -> bool:
        return self.words < max_shared_words


class OverlapMeter:
    """Longest shared runs of words and characters between one original and any number of other texts."""

    def __init__(self, original: str):
        tokens = words(original)
        self.by_words, self.by_chars = SuffixAutomaton(tokens), SuffixAutomaton(" ".join(tokens))

    def measure(self, other: str) -> SharedRun:
        tokens = words(other)
        n_words, end = self.by_words.longest_common(tokens)
        n_chars, _ = self.by_chars.longest_common(" ".join(tokens))
        return SharedRun(n_words, n_chars, (end - n_words, end))


def longest_shared_run(original: str, rephrase: str) -> SharedRun:
    return OverlapMeter(original).measure(rephrase)


def quadratic_longest_run(a: Sequence, b: Sequence) -> int:
    """The straightforward O(n*m) dynamic programme: the baseline the benchmark and the tests compare with."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        row = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                row[j] = previous[j - 1] + 1
                best = max(best, row[j])
        previous = row
    return best


class NgramIndex:
    """Every word n-gram of a set of test texts, for streaming training text through: the decontamination
    test of GPT-3 / lm-eval (n=13) and of the study (n=10). `matches(text)` -> ids of the test texts that
    share at least one n-gram with `text` (equivalently, a shared run of n or more words)."""

    def __init__(self, texts: Iterable[str], n: int):
        self.n = n
        self.owners: dict[tuple, set[int]] = {}
        for i, text in enumerate(texts):
            tokens = words(text)
            for k in range(len(tokens) - n + 1):
                self.owners.setdefault(tuple(tokens[k : k + n]), set()).add(i)

    def matches(self, text: str) -> set[int]:
        tokens, n, found = words(text), self.n, set()
        for k in range(len(tokens) - n + 1):
            owners = self.owners.get(tuple(tokens[k : k + n]))
            if owners:
                found |= owners
        return found
