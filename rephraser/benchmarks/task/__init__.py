"""Any lm-eval task as a benchmark (`--task X`): benchmark.py (TaskBenchmark), twin.py (the data of `rephrased_X`)."""

from rephraser.benchmarks.task.benchmark import TaskBenchmark

__all__ = ["TaskBenchmark"]
