"""The data of a generated `rephrased_X` task: the snapshot `rephraser rephrase --task X` wrote.

    custom_dataset: !function rephraser.benchmarks.task.twin.twin_dataset     # metadata: twin_dir: OUT/task

OUT/task/docs/<split>.jsonl holds X's docs as lm-eval processed them (the evaluation split with the field
rephrased, items without an accepted rephrase left out and counted in report.json); the YAML sets
`process_docs: null`, so they are used as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from rephraser.errors import InputError


def twin_dataset(twin_dir: str | None = None, **_) -> datasets.DatasetDict:
    if not twin_dir or not (Path(twin_dir) / "docs").is_dir():
        raise InputError(
            twin_dir or "twin_dir", "no docs/ folder: this task's data comes from `rephraser rephrase --task`"
        )
    splits = {}
    for path in sorted((Path(twin_dir) / "docs").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits[path.stem] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)
