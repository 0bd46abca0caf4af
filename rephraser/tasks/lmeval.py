"""The lm-eval side of every benchmark: the dataset function its YAMLs name, the task class, few-shot refusal.

    custom_dataset: !function rephraser.tasks.lmeval.dataset
    dataset_kwargs: {benchmark: gsm8k, variant: rephrased}          # + subset (MMLU subject), part, part_file

lm-eval calls a custom_dataset with the task's metadata (and `--metadata`) plus dataset_kwargs as keyword
arguments: `benchmark` names the benchmark (a registered name or a folder, rephraser.benchmarks), the rest are its
data settings. Rephrased records are index-aligned with their originals: every doc keeps its `index` and `id`, so
`--log_samples` rows trace back to the source line; records that cannot be used are skipped and counted in the
log, never shifted. `part` + `part_file` (an experiment's parts.json) keep the test docs of one part only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
from lm_eval.api.samplers import ContextSampler
from lm_eval.api.task import ConfigurableTask

from rephraser.errors import InputError, RephraserError


class RephraserTask(ConfigurableTask):
    """lm-eval's ConfigurableTask, with the data's identity in the `--cache_requests` key: lm-eval keys cached
    requests by task name and few-shot settings only, so a rephrased file swapped through `--metadata` would
    otherwise be served the previous file's requests."""

    def __init__(self, config: dict | None = None, **kwargs):
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def build_all_requests(self, *, tokenizer_name: str = "", **kwargs):
        if kwargs.get("cache_requests"):
            tokenizer_name = f"{tokenizer_name}-data{self.data_fingerprint()}"
        return super().build_all_requests(tokenizer_name=tokenizer_name, **kwargs)

    def data_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for split in sorted(self.dataset):
            for doc in self.dataset[split]:
                digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]


class SelectedDocsTask(RephraserTask):
    """Any lm-eval task's evaluated docs restricted to some positions (`rephraser detect scan --emit-tasks`): the
    task's own splits and process_docs first, then the docs at the positions listed under metadata `selection`
    in metadata `selection_file` (positions as rephraser numbers the task's items: X/0, X/1, ...). Only the
    evaluation split is restricted; few-shot examples come from where the task takes them."""

    def _selected(self, docs):
        if not hasattr(self, "_positions"):
            meta = self.config.metadata or {}
            path, key = meta.get("selection_file"), meta.get("selection")
            if not path or not Path(path).is_file():
                raise InputError(path or "selection_file", "no such file (written by detect scan --emit-tasks)")
            selections = json.loads(Path(path).read_text())
            if key not in selections:
                raise InputError(path, f"holds no selection {key!r}")
            self._positions = selections[key]
        if self._positions and max(self._positions) >= len(docs):
            raise InputError(
                self.config.metadata["selection_file"],
                f"position {max(self._positions)} is beyond the task's {len(docs)} docs: did the task change "
                "since the scan?",
            )
        return docs.select(self._positions) if hasattr(docs, "select") else [docs[i] for i in self._positions]

    def test_docs(self):
        docs = super().test_docs()
        return self._selected(docs) if docs is not None and self.has_test_docs() else docs

    def validation_docs(self):
        docs = super().validation_docs()
        return self._selected(docs) if docs is not None and not self.has_test_docs() else docs


class RefuseFewShot(ContextSampler):
    """For tasks with no split but test: few-shot examples would be test items (lm-eval's fallback)."""

    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if n > 0:
            raise RephraserError(
                "this benchmark has only a test split: few-shot examples would be other test items. "
                "Run its tasks 0-shot (drop --num_fewshot)"
            )
        return []


def no_fewshot_docs() -> list:
    return []


def dataset(
    benchmark: str,
    variant: str = "original",
    subset: str | None = None,
    part: str | None = None,
    part_file: str | None = None,
    **metadata,
) -> datasets.DatasetDict:
    """lm-eval custom_dataset: one variant of a benchmark (one subset of it), optionally one part of an experiment."""
    from rephraser.benchmarks import get_benchmark

    splits = get_benchmark(benchmark, **metadata).splits(variant, subset)
    if part is not None:
        ids = set(_part_ids(part_file, benchmark, part))
        splits = {**splits, "test": [doc for doc in splits["test"] if doc["id"] in ids]}
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def _part_ids(part_file: str | None, benchmark: str, part: str) -> list[str]:
    if not part_file or not Path(part_file).is_file():
        raise InputError(part_file or "part_file", "part_file: no such file (an experiment's parts.json)")
    parts = json.loads(Path(part_file).read_text())
    if benchmark not in parts or part not in parts[benchmark]:
        raise InputError(part_file, f"holds no part {part!r} of benchmark {benchmark!r}")
    return parts[benchmark][part]
