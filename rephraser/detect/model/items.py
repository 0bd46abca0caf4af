"""The items a model-level detector scores: one plain, typed record per benchmark item.

    items = [Item(id="gsm8k/12", text="Question: ...\\nAnswer: ...", part="contaminated",
                  twin="Question: <rephrased>...", prompt="Question: ...\\nAnswer:")]
    check_items(items, cfg.detectors, source="runs/parts.json")    # InputError naming the item and the field

`part` is the ground truth when known ("contaminated": the model was trained on it; "clean": it was not; None:
unknown). `text` is what the likelihood detectors score (and what is written beside the scores); `twin` is its
counterpart for `paired` (the rephrase of an original, or the original of a rephrase; None or "" where there is
none, e.g. an empty LMSYS placeholder: such items get no `paired` score, counted); `prompt` is what `cdd` samples
from; `question`, `choices` and `answer` (index of the correct choice) are what `ts-guess` masks.
"""

from __future__ import annotations

from dataclasses import dataclass

from rephraser.errors import InputError

PARTS = ("contaminated", "clean")
LABELS = {"contaminated": 1, "clean": 0}


@dataclass
class Item:
    id: str
    text: str
    part: str | None = None
    twin: str | None = None
    prompt: str | None = None
    question: str | None = None
    choices: list[str] | None = None
    answer: int | None = None

    def label(self) -> int | None:
        return None if self.part is None else LABELS[self.part]


def check_items(items: list[Item], detectors, source: str = "items") -> None:
    """Every item must carry what the requested detectors read; the first problem stops the run, located as
    `source:N: field 'X': ... (item ID)` with N the item's 1-based position."""
    if not items:
        raise InputError(source, "no items to score")
    seen: dict[str, int] = {}
    for n, item in enumerate(items, 1):
        bad = _locator(source, n, item)
        if not isinstance(item.id, str) or not item.id:
            raise bad("id", "an item needs a non-empty string id")
        if item.id in seen:
            raise bad("id", f"duplicate id (also item {seen[item.id]})")
        seen[item.id] = n
        if not isinstance(item.text, str) or not item.text.strip():
            raise bad("text", "empty text: nothing to score (skip empty placeholders before scoring, and count them)")
        if item.part is not None and item.part not in PARTS:
            raise bad("part", f"{item.part!r} is not one of {list(PARTS)} or None (unlabelled)")
        if "cdd" in detectors and not (item.prompt or "").strip():
            raise bad("prompt", "cdd samples outputs from the item's prompt, and this item has none")
        if "ts-guess" in detectors:
            _check_choices(item, bad)


def _locator(source: str, n: int, item: Item):
    def bad(field: str, message: str) -> InputError:
        return InputError(source, f"{message} (item {item.id!r})", line=n, field=field)

    return bad


def _check_choices(item: Item, bad) -> None:
    if not (item.question or "").strip():
        raise bad("question", "ts-guess needs the question stem")
    if not isinstance(item.choices, list) or len(item.choices) < 2 or not all(isinstance(c, str) for c in item.choices):
        raise bad("choices", "ts-guess needs a list of at least two option texts")
    if not isinstance(item.answer, int) or isinstance(item.answer, bool) or not 0 <= item.answer < len(item.choices):
        raise bad("answer", f"ts-guess needs the index of the correct option in 0..{len(item.choices) - 1}")
    if len(item.choices) > 26:
        raise bad("choices", "more than 26 options cannot be lettered A-Z")


def has_twin(item: Item) -> bool:
    return bool(item.twin and item.twin.strip())
