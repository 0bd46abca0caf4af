"""HumanEval: the benchmark object (benchmark.py), mapping rephrased programs back to the original tests
(programs.py), sandboxed scoring (scoring.py) and its lm-eval tasks (original_humaneval, rephrased_humaneval)."""

from rephraser.benchmarks.humaneval.benchmark import HumanEval

__all__ = ["HumanEval"]
