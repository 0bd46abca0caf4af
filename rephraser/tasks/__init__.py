"""rephraser's lm-eval tasks: where lm-eval finds them, and the glue every benchmark's YAMLs use.

    lm_eval --tasks rephrased_gsm8k,original_gsm8k --model hf --model_args pretrained=DIR     # found via the hook
    from rephraser.tasks import TASKS_DIR, task_manager
    tm = task_manager()                 # a TaskManager that includes these tasks
    lm_eval.simple_evaluate(model=..., tasks=["rephrased_mmlu"], task_manager=tm)

The YAMLs live with their benchmark (rephraser/benchmarks/<name>/): TASKS_DIR is that folder's root. They load
their data through rephraser.tasks.lmeval.dataset, which asks the benchmark object (rephraser.benchmarks).
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def with_tasks_dir(include_path) -> list:
    """`include_path` (None, one path or a list) as a list that contains TASKS_DIR once, first: lm-eval lets a
    later folder's task replace an earlier one of the same name, so the user's own folders win over ours."""
    if include_path is None:
        paths = []
    elif isinstance(include_path, (list, tuple)):
        paths = list(include_path)
    else:
        paths = [include_path]
    if not any(Path(p).resolve() == TASKS_DIR for p in paths):
        paths.insert(0, str(TASKS_DIR))
    return paths


def task_manager(include_path=None, **kwargs):
    """lm-eval's TaskManager with these tasks added to `include_path`."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=with_tasks_dir(include_path), **kwargs)
