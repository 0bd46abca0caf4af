"""GSM-8K: the benchmark object (benchmark.py) and its lm-eval tasks (original_gsm8k, rephrased_gsm8k)."""

from rephraser.benchmarks.gsm8k.benchmark import GSM8K, gold, prompt

__all__ = ["GSM8K", "gold", "prompt"]
