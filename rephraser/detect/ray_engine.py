"""The Ray engine: `rephraser detect scan --engine ray`, the local engine's stages on a Ray Data pipeline.

    engine = RayEngine.connect(address=None, actors=2, gpus_per_actor=0)   # joins a cluster or starts one here
    rows = engine.check(source)                      # a read-only pass over every file, in parallel
    first = engine.run(source, ray_stages)           # FirstPass, row ids as the local engine's
    texts = engine.fetch(source, FetchStage(wanted)) # the second pass: only the files holding wanted rows
    engine.report()                                  # per-stage rows/s, actors, the cluster's resources

The pipeline: a table of files -> read tasks (map_batches, one file each: training.TrainingSource, so fields, chat
turns and bad rows are exactly the local engine's, with file and line) yield chunks of `batch_rows` consecutive
rows -> an actor pool (map_batches over an ActorPoolStrategy) runs stages.FirstPassStages on each chunk; the
stages (the test items' hashed n-grams and embedding matrix, small) travel to every actor once through the
object store, and each actor loads the encoder once and asks for GPUs when it is given some -> each chunk
returns only its per-test-item result (bounded by the test set) -> the driver merges them as they stream in.

Ray's own JSON reader is not used: it stops at a bad line without its number and cannot count skipped ones, and
the counts must equal the local engine's. A file is read by one task (files are the unit of read parallelism;
the stages, which cost the time, run on every actor). Row ids: while the pass runs a row is numbered
(file << ROW_BITS) + its position in the file, an increasing map of (file, line) order; when every file's row
count is known the merged result is renumbered (FirstPass.remap) to the global position, the local engine's id.
"""

from __future__ import annotations

import logging
import pickle
import socket
import time
import warnings
from collections import Counter

import numpy as np

from rephraser.detect.embed import text_chunks
from rephraser.detect.stages import Batch, FetchStage, FirstPass, RowTexts
from rephraser.errors import ConfigError, InputError, RephraserError
from rephraser.log import get_logger

log = get_logger("rephraser.detect")
ROW_BITS = 40  # a file's rows below 2^40; 2^23 files
INSTALL = "pip install 'llm-rephraser[scale]'"
READ_CPUS = 0.25  # a read task's CPU share: the actors keep the rest (2 actors on 2 cores must leave room to read)
CONNECT_TIMEOUT_S = 5.0


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError as e:
        raise ConfigError(f"engine: --engine ray needs Ray Data, not installed here ({e.name}): {INSTALL}") from None
    return ray


def check_reachable(address: str) -> None:
    """Fail in seconds, with one line, on an address nothing listens at (ray.init would retry for a minute)."""
    if address in ("auto", "local"):
        return
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray_address: {address!r} is not host:port or ray://host:port (or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ConfigError(
            f"ray_address: nothing answers at {host}:{port} ({e.strerror or type(e).__name__}); start the head "
            f"with `ray start --head` there, or leave --ray-address out to run a cluster on this machine"
        ) from None


MAX_FILES, MAX_ROWS_PER_FILE = 1 << (63 - ROW_BITS), 1 << ROW_BITS


def _files(source) -> list:
    files = list(getattr(source, "shards", [source]))
    if len(files) >= MAX_FILES:  # ids would overflow int64 (and the last would be the empty-slot marker)
        raise InputError(source.spec, f"{len(files)} files: the Ray engine numbers rows for fewer than {MAX_FILES}")
    return files


def _read_files(batch: dict, batch_rows: int, mode: str = "chunks", wanted: dict | None = None) -> dict:
    """A read task: each file of the batch as chunks of consecutive rows, then its counts (mode "chunks"); only
    its counts ("check"); only the `wanted` (file -> positions) rows' texts, up to the last one ("fetch"). A
    user's error becomes a row: an InputError does not survive Ray's pickling of exceptions; the driver raises it."""
    for file, blob in zip(batch["file"].tolist(), batch["source"]):
        source = pickle.loads(blob)
        try:
            if mode == "fetch":
                yield _row("texts", _wanted_texts(source, file, wanted.get(file, ())))
                continue
            chunks, spent = text_chunks(source, batch_rows), 0.0
            while True:
                began = time.perf_counter()  # reading and parsing only, not the time a yielded chunk waits
                chunk = next(chunks, None)
                spent += time.perf_counter() - began
                if chunk is None:
                    break
                if chunk[0] + len(chunk[1]) >= MAX_ROWS_PER_FILE:  # would spill into the next file's row ids
                    raise InputError(source.spec, f"more than {MAX_ROWS_PER_FILE} rows in one file: split it")
                if mode == "chunks":
                    yield _row("chunk", (file, *chunk))
            yield _row("counts", (file, source.rows, source.skipped, dict(source.reasons), spent))
        except RephraserError as e:
            yield _row("error", str(e))


def _wanted_texts(source, file: int, positions) -> dict[int, str]:
    positions = set(positions)
    found, last = {}, max(positions, default=-1)
    if last < 0:
        return found
    for row, text in source:
        if row in positions:
            found[(file << ROW_BITS) + row] = text
        if row >= last:
            break
    return found


def _row(kind: str, payload) -> dict:
    return {"kind": np.array([kind]), "payload": np.array([pickle.dumps(payload)], dtype=object)}


class StageActor:
    """One actor of the pool: the broadcast stages, and the encoder loaded once; one chunk in, its result out."""

    def __init__(self, stages_ref, embedding_model: str | None, threads: int):
        import ray
        import torch

        torch.set_num_threads(threads)
        self.stages = ray.get(stages_ref[0])  # a list: Ray resolves a top-level ObjectRef argument on its own
        if self.stages.nearest is not None:
            from rephraser.detect.embed import Embedder

            device = "cuda" if torch.cuda.is_available() else None
            embedder = Embedder(embedding_model, device=device)
            self.stages.nearest.vectors = lambda batch: embedder.encode(list(batch.texts))

    def __call__(self, batch: dict) -> dict:
        kind, blob = str(batch["kind"][0]), batch["payload"][0]
        if kind != "chunk":
            return {"kind": batch["kind"], "payload": batch["payload"]}
        file, start, texts = pickle.loads(blob)
        rows = (file << ROW_BITS) + np.arange(start, start + len(texts), dtype=np.int64)
        try:
            return _row("result", self._stages(Batch(rows, texts)))
        except RephraserError as e:
            return _row("error", str(e))

    def _stages(self, batch: Batch) -> tuple[FirstPass, int, dict[str, float]]:
        seconds, parts = {}, {}
        for name in ("ngrams", "nearest", "every_row"):
            stage = getattr(self.stages, name)
            if stage is not None:
                start = time.perf_counter()
                parts[name] = stage(batch)
                seconds[name] = time.perf_counter() - start
        return FirstPass(parts["ngrams"], parts.get("nearest"), parts.get("every_row")), len(batch.rows), seconds


def _quiet(ray) -> None:
    """Ray Data's progress lines and its hint about an actor pool wider than one file's chunks: the scan has its
    own log lines, and a small input is not a mistake."""
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)


class RayEngine:
    def __init__(self, actors: int, gpus_per_actor: float, embedding_model: str | None, batch_rows: int = 4096):
        import ray

        self.ray, self.batch_rows, self.gpus_per_actor = ray, batch_rows, gpus_per_actor
        self.embedding_model = embedding_model
        _quiet(ray)
        self.resources = {k: v for k, v in ray.cluster_resources().items() if not k.startswith(("node:", "object"))}
        self.actors = actors or self._default_actors()
        self.stats: dict[str, dict[str, float]] = {}

    @classmethod
    def connect(
        cls, address: str | None, actors: int | None, gpus_per_actor: float | None, embedding_model: str | None = None
    ) -> RayEngine:
        """Join the cluster at `address` (or the one this process already started, or start one here)."""
        ray = import_ray()
        if not ray.is_initialized():
            if address:
                check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as e:
                first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                where = address or "this machine"
                raise ConfigError(f"ray_address: cannot join the Ray cluster at {where}: {first}") from None
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        gpus = gpus_per_actor if gpus_per_actor is not None else (1.0 if has_gpus else 0.0)
        if gpus > 0 and not has_gpus:
            raise ConfigError(f"num_gpus_per_actor: {gpus} asked for, but the Ray cluster has no GPU")
        return cls(actors or 0, gpus, embedding_model)

    def _default_actors(self) -> int:
        if self.gpus_per_actor > 0:
            return max(1, int(self.resources.get("GPU", 1) // self.gpus_per_actor))
        return max(1, int(self.resources.get("CPU", 1) - READ_CPUS))

    def _actor_cpus(self) -> float:
        cpus = self.resources.get("CPU", 1)
        share = min(1.0, (cpus - READ_CPUS) / self.actors)
        if share < 0.1:
            raise ConfigError(f"actors: {self.actors} actors do not fit the cluster's {cpus:g} CPUs; use fewer")
        return share

    def _files_table(self, files: list, keep=None):
        chosen = [(k, f) for k, f in enumerate(files) if keep is None or k in keep]
        items = [{"file": k, "source": pickle.dumps(f)} for k, f in chosen]
        return self.ray.data.from_items(items, override_num_blocks=max(1, len(items)))

    def _read(self, files: list, mode: str = "chunks", wanted: dict | None = None):
        return self._files_table(files, None if wanted is None else set(wanted)).map_batches(
            _read_files,
            batch_size=1,
            num_cpus=READ_CPUS,
            fn_kwargs={"batch_rows": self.batch_rows, "mode": mode, "wanted": wanted},
        )

    def _rows(self, dataset):
        """(kind, payload) of every output row, as they stream in; a user's error raised here, as one line."""
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for kind, blob in zip(batch["kind"].tolist(), batch["payload"]):
                payload = pickle.loads(blob)
                if kind == "error":
                    raise RephraserError(payload)
                yield kind, payload

    def check(self, source) -> int:
        """Every file read once in parallel, nothing else: a bad line stops the run before the encoding."""
        start = time.monotonic()
        files = _files(source)
        rows = sum(p[1] for k, p in self._rows(self._read(files, "check")) if k == "counts")
        log.info("%s: %d rows in %d files read and checked in %.1f s", source.spec, rows, len(files),
                 time.monotonic() - start)  # fmt: skip
        return rows

    def run(self, source, stages, desc: str = "scan", total: int | None = None) -> FirstPass:
        import ray

        files = _files(source)
        start = time.monotonic()
        stages_ref = [ray.put(stages)]  # the test side, once into the object store
        dataset = self._read(files).map_batches(
            StageActor,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=self._actor_cpus(),
            num_gpus=self.gpus_per_actor or None,
            fn_constructor_kwargs={
                "stages_ref": stages_ref,
                "embedding_model": self.embedding_model,
                "threads": self._threads(),
            },
        )
        result, counts, seconds, rows = stages.empty(), {}, Counter(), 0
        for kind, payload in self._rows(dataset):
            if kind == "result":
                part, n, took = payload
                result, rows = result.merge(part), rows + n
                seconds.update(took)
            elif kind == "counts":
                counts[payload[0]] = payload
                seconds["read"] += payload[4]
        if len(counts) != len(files):  # never a result missing a file's rows
            raise RephraserError(f"{source.spec}: {len(files) - len(counts)} files were not read to the end")
        self._set_counts(source, files, counts)
        self.offsets = np.cumsum([0] + [counts[k][1] for k in range(len(files))])
        if rows != source.rows:
            raise RephraserError(f"{source.spec}: {source.rows} rows read but {rows} went through the stages")
        self._timings(rows, seconds, time.monotonic() - start)
        return result.remap(self.global_ids)

    def _threads(self) -> int:
        return max(1, int(self._actor_cpus()))

    def global_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        return self.offsets[ids >> ROW_BITS] + (ids & ((1 << ROW_BITS) - 1))

    def _set_counts(self, source, files, counts) -> None:
        ordered = [(files[k].spec, counts[k][1], counts[k][2], Counter(counts[k][3])) for k in range(len(files))]
        if hasattr(source, "set_counts"):
            source.set_counts(ordered)
        else:
            _, source.rows, source.skipped, source.reasons = ordered[0]

    def _timings(self, rows: int, seconds: Counter, wall: float) -> None:
        names = {"read": "read", "ngrams": "ngram", "nearest": "embedding", "every_row": "every_row"}
        self.stats = {
            names[k]: {"actor_seconds": round(s, 3), "rows_per_s_per_actor": round(rows / s, 1) if s else None}
            for k, s in sorted(seconds.items(), key=lambda item: list(names).index(item[0]))
        }  # read: seconds and rows/s per read task (a task reads one file)
        self.stats["pipeline"] = {"seconds": round(wall, 3), "rows_per_s": round(rows / wall, 1) if wall else None}

    def fetch(self, source, stage: FetchStage) -> RowTexts:
        """The wanted rows' texts: only the files that hold one are read, each up to its last wanted row."""
        if not stage.wanted:
            return RowTexts({})
        wanted: dict[int, set[int]] = {}
        for row in stage.wanted:
            file = int(np.searchsorted(self.offsets, row, side="right") - 1)
            wanted.setdefault(file, set()).add(row - int(self.offsets[file]))
        found: dict[int, str] = {}
        for _, texts in self._rows(self._read(_files(source), "fetch", wanted)):
            found.update({int(self.global_ids(np.array([r]))[0]): t for r, t in texts.items()})
        missing = sorted(stage.wanted - set(found))
        if missing:
            raise InputError(source.spec, f"rows {missing[:5]} were read in the first pass but not in the second")
        return RowTexts(found)

    def report(self) -> dict:
        return {
            "name": "ray",
            "actors": self.actors,
            "gpus_per_actor": self.gpus_per_actor,
            "cluster_resources": self.resources,
            "stages": self.stats,
        }
