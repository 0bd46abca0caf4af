"""`rephraser experiment`: the study as one controlled experiment, with a clean control and a report.

    rephraser experiment --config configs/experiments/smollm2-gsm8k-demo.yaml

config.py (ExperimentConfig, conditions, every check before anything runs), parts.py (the eligible items, the
seeded and stratified contaminated / clean split, each condition's training texts, all asked of the benchmark
objects), tasks.py (lm-eval YAMLs for each variant x part), steps.py (tokenize, train, evaluate: each the project's
own command with a saved config file, skipped only when complete and made from the same inputs), identity.py
(content fingerprints of those inputs), results.py (tidy rows and the contamination effect, read from lm-eval's
files and checked against all of its samples), stats.py (Wilson and bootstrap intervals), analysis.py (n-gram and
embedding overlap of the training texts), report.py (report.md and charts), run.py (main).
"""
