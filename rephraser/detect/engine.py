"""The local engine: streams a training source through the scan's stages in this process, batch by batch.

    engine = LocalEngine(batch_rows=4096)
    rows = engine.check(source)                    # a pass that only reads: bad rows found before any work
    first = engine.run(source, FirstPassStages(...), desc="scan train.jsonl")
    texts = engine.fetch(source, FetchStage(wanted))   # the second pass: none wanted, no pass; stops at the last

What an engine must do (the contract a Ray engine keeps, with map_batches over the same stages): number rows in
stream order (the row ids every result names), call the stage on each batch, merge the batch results (any order,
any grouping: the stages' results are order-independent). This one keeps a running merge, so memory is one batch
plus results bounded by the test set.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from rephraser.detect.embed import text_chunks
from rephraser.detect.stages import Batch, FetchStage, RowTexts
from rephraser.errors import InputError
from rephraser.log import get_logger

log = get_logger("rephraser.detect")


class LocalEngine:
    def __init__(self, batch_rows: int = 4096):
        self.batch_rows = batch_rows

    def check(self, source) -> int:
        """Read every row once, doing nothing with it: a bad line (or a truncated gzip stream) at the end of the
        file is then an error before hours of encoding, not after them. Returns the row count."""
        start = time.monotonic()
        rows = sum(1 for _ in source)
        log.info("%s: %d rows read and checked in %.1f s before the scan", source.spec, rows, time.monotonic() - start)
        return rows

    def run(self, source, stages, desc: str = "scan", total: int | None = None):
        """The merged result of `stages` over every row of `source`."""
        result = stages.empty()
        bar = tqdm(desc=desc, unit=" rows", total=total, disable=None, dynamic_ncols=True)
        try:
            for start, texts in text_chunks(source, self.batch_rows):
                result = result.merge(stages(Batch.at(start, texts)))
                bar.update(len(texts))
        finally:
            bar.close()
        return result

    def fetch(self, source, stage: FetchStage) -> RowTexts:
        """The wanted rows' texts; reads nothing when none is wanted, and stops at the last one."""
        found: dict[int, str] = {}
        if not stage.wanted:
            return RowTexts(found)
        for row, text in source:
            if row in stage.wanted:
                found[row] = text
            if row >= stage.last:
                break
        missing = sorted(stage.wanted - set(found))
        if missing:  # the data changed between the passes
            raise InputError(
                source.spec,
                f"rows {missing[:5]} were read in the first pass but not in the second: did "
                f"{Path(source.spec).name} change during the scan?",
            )
        return RowTexts(found)
