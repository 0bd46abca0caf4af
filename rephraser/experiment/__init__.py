"""`rephraser experiment`: the study as one controlled experiment, with a clean control and a report.

    rephraser experiment --config configs/experiments/smollm2-gsm8k-demo.yaml

config.py (ExperimentConfig, conditions), parts.py (the seeded contaminated / clean split, training texts, the
datasets of the part tasks), tasks.py (lm-eval YAMLs for each variant x part), steps.py (tokenize, train,
evaluate: each step skipped when its outputs are complete), evaluate.py (lm-eval through its Python API, its own
result files), stats.py (Wilson and bootstrap intervals), results.py (tidy rows and the contamination effect,
read from lm-eval's files), report.py (report.md and charts), run.py (main).
"""
