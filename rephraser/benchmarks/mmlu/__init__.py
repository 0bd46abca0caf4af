"""MMLU: the benchmark object (benchmark.py), subjects, answer-leak detection (leaks.py) and its lm-eval tasks
(original_mmlu over 57 subjects, rephrased_mmlu and rephrased_mmlu_zh over the 3 LMSYS subjects; generate.py)."""

from rephraser.benchmarks.mmlu.benchmark import MMLU, options, prompt, prompt_zh

__all__ = ["MMLU", "options", "prompt", "prompt_zh"]
