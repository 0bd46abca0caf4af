"""The benchmarks rephraser studies, one folder each, and the registry every command asks.

    from rephraser.benchmarks import get_benchmark, BENCHMARKS
    bench = get_benchmark("gsm8k", data_dir=...)          # a registered name ...
    bench = get_benchmark("/path/to/quiz", data_dir=...)  # ... or a folder whose benchmark.py defines BENCHMARK
    bench = from_settings(benchmark=None, task="arc_easy", field=None, include_path=None)   # any lm-eval task

Each folder holds its lm-eval YAMLs beside its Benchmark subclass (base.py is the interface): gsm8k/, mmlu/,
humaneval/, and task/ (any lm-eval task through lm-eval itself). A benchmark outside this package is a folder
with `benchmark.py` (defining `BENCHMARK = MyBenchmark`) and its YAMLs; name it by its path, or put its parent
folder on REPHRASER_BENCHMARK_PATH (os.pathsep-separated) and name it by its folder's name. How to write one:
docs/adding-a-benchmark.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from rephraser.errors import ConfigError

BENCHMARKS = {
    "gsm8k": "rephraser.benchmarks.gsm8k:GSM8K",
    "mmlu": "rephraser.benchmarks.mmlu:MMLU",
    "humaneval": "rephraser.benchmarks.humaneval:HumanEval",
}
# Benchmarks whose own JSONL rows `rephraser tokenize` reads (Benchmark.row_fields / row), in the order tried.
ROW_FORMATS = ("humaneval", "gsm8k")
PATH_ENV = "REPHRASER_BENCHMARK_PATH"
MODULE_FILE = "benchmark.py"


def _folder(spec: str) -> Path | None:
    """The folder a non-registered name means: a path to a folder with benchmark.py, or a subfolder of
    REPHRASER_BENCHMARK_PATH."""
    candidates = [Path(spec).expanduser()] if ("/" in spec or spec.startswith(".")) else []
    candidates += [Path(root) / spec for root in os.environ.get(PATH_ENV, "").split(os.pathsep) if root]
    return next((c.resolve() for c in candidates if (c / MODULE_FILE).is_file()), None)


def _load_folder(folder: Path):
    name = f"rephraser_benchmark_{folder.name}_{abs(hash(str(folder))) % 10**8}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, folder / MODULE_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    module = sys.modules[name]
    if not hasattr(module, "BENCHMARK"):
        raise ConfigError(f"benchmark: {folder / MODULE_FILE} defines no BENCHMARK (the Benchmark subclass)")
    return module.BENCHMARK


def benchmark_class(spec: str):
    """The Benchmark subclass that `spec` names (a registered name, or a folder), or ConfigError listing them."""
    if spec in BENCHMARKS:
        shadow = _folder(spec)
        if shadow is not None:  # which one the user meant is a guess either way: ask
            raise ConfigError(
                f"benchmark: {spec!r} is rephraser's built-in and also the folder {shadow} on {PATH_ENV}: name the "
                f"folder by its path ({shadow}) or give it another name"
            )
        module, _, attribute = BENCHMARKS[spec].partition(":")
        return getattr(importlib.import_module(module), attribute)
    folder = _folder(spec)
    if folder is not None:
        return _load_folder(folder)
    raise ConfigError(
        f"benchmark: {spec!r} is not a benchmark (registered: {sorted(BENCHMARKS)}; or a folder with {MODULE_FILE}, "
        f"by path or on {PATH_ENV}; any lm-eval task: --task NAME)"
    )


def check_benchmark(spec: str, field: str = "benchmark") -> str:
    """For config validation: `spec` unchanged when it names a benchmark (a folder path made absolute)."""
    try:
        benchmark_class(spec)
    except ConfigError as e:
        raise ConfigError(str(e).replace("benchmark:", f"{field}:", 1)) from None
    folder = None if spec in BENCHMARKS else _folder(spec)
    return str(folder) if folder is not None and ("/" in spec or spec.startswith(".")) else spec


def get_benchmark(spec: str, **settings):
    """An instance of the benchmark `spec` names, with its data settings (data_dir, subjects, --metadata keys)."""
    return benchmark_class(spec)(**settings)


def from_settings(
    benchmark: str | None = None,
    task: str | None = None,
    field: str | None = None,
    include_path: str | None = None,
    judge=None,
    **settings,
):
    """The benchmark of a command's settings: --benchmark NAME, or --task X (any lm-eval task)."""
    if task:
        from rephraser.benchmarks.task import TaskBenchmark

        return TaskBenchmark(task, field=field, include_path=include_path, judge=judge, **settings)
    return get_benchmark(benchmark, **settings)


def row_formats() -> list[tuple[str, tuple[str, ...], object]]:
    """(the field that identifies the format, its fields, fields -> (prompt, solution)) of each benchmark with its
    own training rows."""
    return [(cls.row_key, cls.row_fields, cls.row) for cls in map(benchmark_class, ROW_FORMATS)]
