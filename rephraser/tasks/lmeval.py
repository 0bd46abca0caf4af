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


class ItemSeededTask(RephraserTask):
    """A task of `rephraser detect scan --emit-tasks`: few-shot examples drawn per item, from a generator seeded by
    lm-eval's few-shot seed and the item itself. lm-eval draws them from one generator in document order, so an
    item restricted into `_clean` got other examples than in `_full` and the two scores differed by the draw, not
    by the items; seeded per item, an item has the same prompt in `_full`, `_clean` and `_flagged`. (Against the
    source task run on its own, whose draws follow its document order, prompts are equal 0-shot only.)"""

    def set_fewshot_seed(self, seed: int | None = None) -> None:
        self._item_seed_base = seed
        super().set_fewshot_seed(seed)

    def fewshot_context(self, doc, num_fewshot, *args, **kwargs):
        if num_fewshot and hasattr(self, "sampler"):
            key = json.dumps([getattr(self, "_item_seed_base", None), doc], sort_keys=True, default=str)
            self.sampler.set_rnd(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        return super().fewshot_context(doc, num_fewshot, *args, **kwargs)


class SelectedDocsTask(ItemSeededTask):
    """Any lm-eval task's evaluated docs restricted to some positions (`rephraser detect scan --emit-tasks`): the
    task's own splits and process_docs first, then the docs at the positions listed under metadata `selection`
    in metadata `selection_file` (positions as rephraser numbers the task's items: X/0, X/1, ...), each checked
    against the hash of the doc the scan saw there. Only the evaluation split is restricted: few-shot examples
    come from where the task takes them, unrestricted also when that is the evaluated split."""

    _restrict = True

    def fewshot_docs(self):
        self._restrict = False  # a pool drawn from the evaluated split keeps every doc
        try:
            return super().fewshot_docs()
        finally:
            self._restrict = True

    def data_fingerprint(self) -> str:  # --cache_requests: the selection is part of the data
        meta = self.config.metadata or {}
        selection = meta.get("selection_file"), meta.get("selection")
        path = Path(selection[0]) if selection[0] else None
        text = path.read_text() if path and path.is_file() else ""
        return hashlib.sha256((super().data_fingerprint() + repr(selection) + text).encode()).hexdigest()[:16]

    def _selected(self, docs):
        if not self._restrict:
            return docs
        if not hasattr(self, "_positions"):
            meta = self.config.metadata or {}
            path, key = meta.get("selection_file"), meta.get("selection")
            if not path or not Path(path).is_file():
                raise InputError(path or "selection_file", "no such file (written by detect scan --emit-tasks)")
            selections = json.loads(Path(path).read_text())
            if key not in selections:
                raise InputError(path, f"holds no selection {key!r}")
            self._positions = selections[key]
            self._hashes = selections.get(f"{key}:sha256")
        path = self.config.metadata["selection_file"]
        if self._positions and max(self._positions) >= len(docs):
            raise InputError(
                path,
                f"position {max(self._positions)} is beyond the task's {len(docs)} docs: did the task change "
                "since the scan?",
            )
        chosen = docs.select(self._positions) if hasattr(docs, "select") else [docs[i] for i in self._positions]
        if self._hashes is not None:
            moved = [p for p, d, h in zip(self._positions, chosen, self._hashes) if doc_sha256(d) != h]
            if moved:
                raise InputError(path, f"the docs at positions {moved[:5]} are not the ones the scan saw there: the "
                                 "task's data changed since the scan; scan it again")  # fmt: skip
        return chosen

    def test_docs(self):
        docs = super().test_docs()
        return self._selected(docs) if docs is not None and self.has_test_docs() else docs

    def validation_docs(self):
        docs = super().validation_docs()
        return self._selected(docs) if docs is not None and not self.has_test_docs() else docs


def doc_sha256(doc) -> str:
    """A doc's identity for a selection by position (--emit-tasks records it; the task checks it)."""
    return hashlib.sha256(json.dumps(dict(doc), sort_keys=True, default=str).encode()).hexdigest()


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
