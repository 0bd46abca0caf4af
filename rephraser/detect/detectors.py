"""The scan's detectors, one small class each, and the plan a --method makes of them (the one place that reads it).

    plan = ScanPlan.of(cfg)                  # stages to run, where neighbours come from, judged or not, detectors
    findings = ItemFindings(words=..., ngram_rows={10: 0, 13: 0}, first_rows=..., neighbours=[Neighbour(...)])
    {d.name: d.flag(findings) for d in plan.detectors}    # True / False / None (undecided) per detector

A detector says True (contaminated), False, or None when it cannot decide: an n-gram detector for a test item
shorter than n words (it has no n-gram, so no training row could ever match it: "clean" would be a claim the
test cannot make), the judge when a pair got no verdict (a failed request, an unparseable reply). The
embedding detector compares the raw cosine with the threshold (>=), never a rounded one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NGRAM_SIZES = (13, 10)  # the order results list them in


@dataclass
class Neighbour:
    """One training row next to one test item."""

    row: int
    similarity: float | None  # raw cosine (embedding neighbours), None otherwise
    shared_words: int  # longest shared run of words (rephraser.overlap)
    train: str
    judge: bool | None = None

    def as_dict(self) -> dict:
        return {
            "row": self.row,
            "similarity": self.similarity,
            "shared_words": self.shared_words,
            "ngram10": self.shared_words >= 10,
            "ngram13": self.shared_words >= 13,
            "judge": self.judge,
            "train": self.train,
        }


@dataclass
class ItemFindings:
    """What the stages found for one test item."""

    words: int  # its words after normalisation (an n-gram needs n of them)
    ngram_rows: dict[int, int]  # n -> training rows sharing an n-gram with it
    first_rows: dict[int, list[int]]  # n -> the first of those rows (at most ngrams.MATCHES_KEPT)
    neighbours: list[Neighbour] = field(default_factory=list)


@dataclass(frozen=True)
class NgramDetector:
    n: int

    @property
    def name(self) -> str:
        return f"ngram{self.n}"

    def flag(self, found: ItemFindings) -> bool | None:
        if found.words < self.n:
            return None
        return found.ngram_rows[self.n] > 0


@dataclass(frozen=True)
class EmbeddingDetector:
    threshold: float
    name: str = "embedding"

    def flag(self, found: ItemFindings) -> bool:
        top = found.neighbours[0] if found.neighbours else None
        return top is not None and top.similarity is not None and top.similarity >= self.threshold


@dataclass(frozen=True)
class JudgeDetector:
    name: str  # llm | pipeline

    def flag(self, found: ItemFindings) -> bool | None:
        verdicts = [n.judge for n in found.neighbours]
        if any(v is True for v in verdicts):
            return True
        return None if any(v is None for v in verdicts) else False


@dataclass(frozen=True)
class ScanPlan:
    """What one --method runs."""

    method: str
    neighbours: Literal["first_ngram_row", "top_k", "every_row"]  # where each test item's neighbours come from
    judged: bool  # the judge sees every (test item, neighbour) pair
    detectors: tuple

    @property
    def embeds(self) -> bool:
        return self.neighbours == "top_k"

    @classmethod
    def of(cls, cfg) -> ScanPlan:
        ngrams = tuple(NgramDetector(n) for n in NGRAM_SIZES)
        embedding = (EmbeddingDetector(cfg.threshold),)
        plans = {
            "ngram": ("first_ngram_row", False, ngrams),
            "embedding": ("top_k", False, ngrams + embedding),
            "llm": ("every_row", True, ngrams + (JudgeDetector("llm"),)),
            "pipeline": ("top_k", True, ngrams + embedding + (JudgeDetector("pipeline"),)),
        }
        neighbours, judged, detectors = plans[cfg.method]
        return cls(cfg.method, neighbours, judged, detectors)

    def listed(self, neighbours: list[Neighbour]) -> list[Neighbour]:
        """The neighbours results.json lists: every row for llm would be the whole set, so there only the rows
        the judge did not clear."""
        return [n for n in neighbours if n.judge is not False] if self.neighbours == "every_row" else neighbours
