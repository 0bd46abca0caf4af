"""lm-eval task folders for the rephrased and original MMLU / GSM-8K / HumanEval (issue #4: not built yet)."""
