"""Does a rephrased multiple-choice question give its answer away? (A leak inflates every model's score.)

    leak_reason(rephrased, choices, answer, original) -> None | "announces an answer ('Response:')" | ...

Three signs, each checked on text normalised the same way (lower case, punctuation to spaces):
  - an answer-announcing phrase: "Answer:", "Reply:", "Response:", "The answer is ...", "Correct answer: ...";
  - the gold letter stated ("the answer is (B)", "option C");
  - the gold option's text stated in the question when the original question did not contain it (this is
    also how a question turned into "Is it X?" shows); options of fewer than two words and eight
    characters ("1", "-i", "True") are too short to tell apart from ordinary text and are not used.
The LMSYS rephrased MMLU (3 subjects, 485 questions) has 38 questions of the first kind; `rephraser
rephrase` applies the same check to the MMLU questions it generates.
"""

from __future__ import annotations

import re

ANNOUNCE = re.compile(
    r"(?i)(?:^|[\n.?!:;]\s*|\s)(?:the\s+)?(?:correct\s+|potential\s+|right\s+)?(?:answer|reply|response)"
    r"(?:\s+is)?(?:\s+that)?\s*:|\bthe\s+(?:correct\s+)?answer\s+is\b"
)
LETTER = re.compile(r"(?i)\b(?:answer|option|choice)\s*(?:is\s*)?:?\s*\(?([ABCD])\)?(?=\W|$)")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def distinctive(option: str) -> bool:
    words = normalise(option).split()
    return len(words) >= 2 and len(" ".join(words)) >= 8


def leak_reason(rephrased: str, choices: list[str], answer: int, original: str = "") -> str | None:
    """Why `rephrased` gives away option `answer` (0-3) of `choices`, or None."""
    announced = ANNOUNCE.search(rephrased)
    if announced:
        return f"announces an answer ({announced.group(0).strip()!r})"
    letter = LETTER.search(rephrased)
    if letter and letter.group(1).upper() == "ABCD"[answer]:
        return f"states the gold letter ({letter.group(0).strip()!r})"
    gold = normalise(choices[answer])
    if (
        distinctive(choices[answer])
        and f" {gold} " in f" {normalise(rephrased)} "
        and f" {gold} " not in f" {normalise(original)} "
    ):
        return f"states the gold option's text ({choices[answer]!r})"
    return None
