"""The two parts of each benchmark's test set, and what each condition trains on.

    pool = Pool(cfg, spec, conditions)      # the benchmark's eligible items, and every condition's texts for them
    parts = pool.split()                    # {"contaminated": [ids], "clean": [ids]}: disjoint, seeded, stratified
    texts = pool.texts(condition, ids)      # the training texts of `ids` (two per item for mix)

An item is eligible when both evaluated variants (original, rephrased) score it AND every condition has a usable
training text for it (an empty placeholder, an empty translation or an empty line of a `data:` file make it
ineligible for all conditions alike, so the parts stay exchangeable). The parts are the first `contaminated` and
the next `clean` items of a shuffle of the eligible ids seeded by (seed, benchmark); a benchmark whose tasks are split
into subsets (MMLU's subjects) is split per subset, sizes allotted in proportion (largest remainder) with at least
one item of each part per subset, so no subject's task is ever empty. Explicit ids must all resolve and be
eligible. Training texts are the benchmark's own (rephraser/benchmarks/<name>/): the study's formats.
"""

from __future__ import annotations

import functools
import random

from rephraser.benchmarks import get_benchmark
from rephraser.benchmarks.sources import read_rephrased_texts
from rephraser.errors import ConfigError, InputError

PARTS = ("contaminated", "clean")


class Pool:
    def __init__(self, cfg, spec: str, conditions):
        self.cfg, self.spec = cfg, spec
        self.bench = get_benchmark(spec, data_dir=cfg.data_dir)
        self.docs = {variant: {d["id"]: d for d in self.bench.docs(variant)} for variant in ("original", "rephrased")}
        self.by_kind = {}
        for condition in conditions:
            for kind in condition.kinds():
                key = (kind, condition.language, condition.name if kind == "data" else None)
                if key not in self.by_kind:
                    self.by_kind[key] = self._texts(kind, condition)
        rephrased = self.docs["rephrased"]
        self.eligible = [
            i for i in self.docs["original"] if i in rephrased and all(i in t for t in self.by_kind.values())
        ]

    @functools.cached_property
    def items(self) -> dict:
        """id -> Item of every test item of the benchmark, in its order."""
        return {item.id: item for item in self.bench.items()}

    def _texts(self, kind: str, condition) -> dict[str, str]:
        if kind == "data":
            return self._from_file(condition.data[self.bench.name])
        if kind not in self.bench.train_kinds:
            raise ConfigError(f"conditions: {condition.name}: {self.bench.title} has no {kind} training texts")
        return self.bench.training_texts(kind, condition.language)

    def _from_file(self, path: str) -> dict[str, str]:
        """A file of training texts aligned by index with the benchmark's items: exactly one line per item."""
        items = list(self.items.values())
        texts = read_rephrased_texts(path)
        if len(texts) != len(items):
            raise InputError(
                path,
                f"{len(texts)} lines, but {self.bench.title} has {len(items)} items: a data file is aligned with the "
                "benchmark by line (one extra line would shift every text onto another item)",
            )
        return {item.id: text for item, text in zip(items, texts) if text.strip()}

    # ------------------------------------------------------------------ parts
    def split(self) -> dict[str, list[str]]:
        if self.cfg.explicit_parts():
            return self._explicit()
        wanted = self.cfg.contaminated + self.cfg.clean
        if wanted > len(self.eligible):
            raise ConfigError(
                f"contaminated + clean = {wanted} items, but {self.spec} has only {len(self.eligible)} that both its "
                "original and its rephrased task score and every condition can train on"
            )
        subsets = {}
        for i in self.eligible:
            subsets.setdefault(self.bench.subset_of(i), []).append(i)
        if len(subsets) == 1:  # one task: one shuffle of every eligible id
            order = sorted(self.eligible)
            random.Random(f"{self.cfg.seed}-{self.bench.name}").shuffle(order)
            return {"contaminated": order[: self.cfg.contaminated], "clean": order[self.cfg.contaminated : wanted]}
        return self._stratified(subsets)

    def _stratified(self, subsets: dict) -> dict[str, list[str]]:
        if min(self.cfg.contaminated, self.cfg.clean) < len(subsets):
            raise ConfigError(
                f"contaminated / clean: {self.spec} is scored per subset "
                f"({len(subsets)}: {sorted(subsets)}); each part "
                f"needs at least one item of each, so at least {len(subsets)} items per part"
            )
        names = sorted(subsets)
        orders = {s: sorted(subsets[s]) for s in names}
        for s in names:
            random.Random(f"{self.cfg.seed}-{self.bench.name}-{s}").shuffle(orders[s])
        counts = {part: _allot(getattr(self.cfg, part), {s: len(orders[s]) for s in names}) for part in PARTS}
        parts = {part: [] for part in PARTS}
        for s in names:
            c, k = counts["contaminated"][s], counts["clean"][s]
            if c + k > len(orders[s]):
                raise ConfigError(f"contaminated + clean: subset {s} of {self.spec} has only {len(orders[s])} items")
            parts["contaminated"] += orders[s][:c]
            parts["clean"] += orders[s][c : c + k]
        return parts

    def _explicit(self) -> dict[str, list[str]]:
        parts = {part: [i for i in getattr(self.cfg, f"{part}_ids") if i in self.items] for part in PARTS}
        for part in PARTS:
            if not parts[part]:
                raise ConfigError(f"{part}_ids: none is a {self.bench.title} item: each benchmark needs both parts")
        not_eligible = [i for part in PARTS for i in parts[part] if i not in set(self.eligible)]
        if not_eligible:
            raise ConfigError(
                f"contaminated_ids / clean_ids: {not_eligible[:5]} are "
                f"not usable {self.bench.title} items (absent from "
                "one variant, or without a training text for one condition)"
            )
        subsets = {self.bench.subset_of(i) for part in PARTS for i in parts[part]}
        for part in PARTS:
            missing = sorted(subsets - {self.bench.subset_of(i) for i in parts[part]}, key=str)
            if missing:
                raise ConfigError(
                    f"{part}_ids: no item of subset(s) {missing} of {self.bench.title}: its task would be empty"
                )
        return parts

    def check_recorded(self, parts: dict, where) -> None:
        """The parts an earlier run recorded must still be eligible items (else the models trained on them are
        reported against other data)."""
        gone = [i for part in PARTS for i in parts.get(part, []) if i not in set(self.eligible)]
        if gone or not all(parts.get(part) for part in PARTS):
            raise ConfigError(
                f"{where}: the recorded {self.spec} parts no longer "
                f"match the data: {len(gone)} recorded item(s) are not "
                f"eligible now ({gone[:5]}); the data changed (another data_dir or REPHRASER_DATA_DIR, updated files). "
                "Rerun with the data it was made with, or use another out"
            )

    # ------------------------------------------------------------------ texts
    def texts(self, condition, ids: list[str]) -> list[tuple[str, str]]:
        """(id, training text) of a condition for `ids`, one per item and kind, in the part's order."""
        out = []
        for kind in condition.kinds():
            by_id = self.by_kind[(kind, condition.language, condition.name if kind == "data" else None)]
            out += [(i, by_id[i]) for i in ids]
        return out


def _allot(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """`total` spread over the subsets in proportion to their sizes (largest remainder), at least one each."""
    names = sorted(sizes)
    rest = total - len(names)
    whole = sum(sizes.values())
    shares = {s: rest * sizes[s] / whole for s in names}
    counts = {s: 1 + int(shares[s]) for s in names}
    left = total - sum(counts.values())
    for s in sorted(names, key=lambda s: (-(shares[s] - int(shares[s])), s))[:left]:
        counts[s] += 1
    return counts
