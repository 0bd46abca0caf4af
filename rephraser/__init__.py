"""rephraser: study benchmark contamination with rephrased samples.

Pipeline: rephrase -> tokenize (`rephraser tokenize`) -> train (`accelerate launch -m rephraser.train`)
-> evaluate (`lm_eval --tasks rephrased_gsm8k ...`). See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"
