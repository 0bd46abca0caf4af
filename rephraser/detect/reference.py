"""Another decontaminator's verdicts (`detect scan --reference`), read and checked before the scan, and the
precision and recall of each of our detectors against them.

    reference = load_reference("CodeAlpacaDB.jsonl")     # InputError naming file, line and field on bad input
    agreement(reference, items, records)                 # per detector: tp, fp, fn, undecided, precision, recall

The format is the LMSYS decontaminator's output: one JSON object a line, `test` (the test item's text) and
`results` (a list of JSON booleans, one per judged neighbour; the item is flagged when any is true). A verdict
that is not a JSON boolean (the string "False" is truthy in Python) is refused, as is one test text listed twice
with different verdicts. A reference row is matched to every test item with the same text (stripped); rows that
match none are counted as unmatched. A detector's undecided items (None) are not flagged: they count as misses
when the reference flags them, and `undecided` says how many there were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rephraser.errors import InputError


@dataclass
class Reference:
    path: str
    flagged: dict[str, bool]  # stripped test text -> the reference flags it
    lines: dict[str, int]  # stripped test text -> how many lines list it


def _verdicts(path: str, line: int, row) -> tuple[str, bool]:
    if not isinstance(row, dict):
        raise InputError(path, f"a JSON {type(row).__name__}, not an object with test and results", line)
    test, results = row.get("test"), row.get("results")
    if not isinstance(test, str):
        raise InputError(path, f"missing or not text (got {type(test).__name__})", line, "test")
    if not isinstance(results, list) or not all(isinstance(v, bool) for v in results):
        raise InputError(
            path,
            f"must be a list of JSON booleans (true/false), got {json.dumps(results)[:80]}: a string such as "
            '"False" would count as flagged',
            line,
            "results",
        )
    return test.strip(), any(results)


def load_reference(path: str) -> Reference:
    if not Path(path).is_file():
        raise InputError(path, "no such file (--reference)")
    flagged: dict[str, bool] = {}
    first_line: dict[str, int] = {}
    lines: dict[str, int] = {}
    with open(path, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(path, f"not a valid JSON line ({str(e)[:80]})", line) from None
            test, verdict = _verdicts(path, line, row)
            if test in flagged and flagged[test] != verdict:
                raise InputError(
                    path, f"the same test item as line {first_line[test]}, with another verdict", line, "results"
                )
            flagged[test] = verdict
            first_line.setdefault(test, line)
            lines[test] = lines.get(test, 0) + 1
    if not flagged:
        raise InputError(path, "no reference rows")
    return Reference(path, flagged, lines)


def agreement(reference: Reference, items, records: list[dict]) -> dict:
    """Precision and recall of each detector in `records` (results.json's items) against the reference."""
    by_text: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        by_text.setdefault(item.text.strip(), []).append(k)
    truth = {k: flagged for text, flagged in reference.flagged.items() for k in by_text.get(text, [])}
    unmatched = sum(count for text, count in reference.lines.items() if text not in by_text)  # lines, as listed
    out = {
        "reference": reference.path,
        "items_matched": len(truth),
        "unmatched": unmatched,
        "reference_flagged": sum(truth.values()),
        "detectors": {},
    }
    for detector in sorted({d for r in records for d in r["flagged"]}):
        said = {k: records[k]["flagged"].get(detector) for k in truth}
        tp = sum(1 for k, t in truth.items() if t and said[k] is True)
        fp = sum(1 for k, t in truth.items() if not t and said[k] is True)
        fn = sum(1 for k, t in truth.items() if t and said[k] is not True)
        out["detectors"][detector] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "undecided": sum(1 for v in said.values() if v is None),
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        }
    return out
