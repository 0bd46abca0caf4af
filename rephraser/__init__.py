"""rephraser: study benchmark contamination with rephrased samples.

Pipeline: rephrase -> tokenize (`rephraser tokenize`) -> train (`accelerate launch -m rephraser.train`)
-> evaluate (`lm_eval --tasks rephrased_gsm8k ...`). See README.md and docs/architecture.md.
"""

__version__ = "0.1.0"


def register_lm_eval() -> None:
    """Register rephraser's tasks and model backends with lm-eval (the startup hook does this by itself)."""
    from rephraser.lm_eval_plugin import register_lm_eval as register

    register()
