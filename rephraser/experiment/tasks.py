"""lm-eval tasks for the experiment: each benchmark variant (original, rephrased) restricted to each part.

    names = write_tasks(folder, cfg, part_file)     # {(benchmark name, variant, part): task or group name}

Each YAML includes the benchmark's own task for that variant (rephraser/benchmarks/<name>/<variant>_<name>.yaml:
the same prompt, generation settings, filters and metrics as `original_gsm8k`, `rephrased_gsm8k`, ...) and keeps the
items of one part (rephraser.tasks.lmeval.dataset with `part`). A benchmark whose tasks are per subset (MMLU's
subjects) gets one task per subset and a size-weighted group per variant and part, as its own group does. One
lm-eval run per model scores every variant x part; the numbers in its result file are the experiment's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.benchmarks import get_benchmark

PARTS = ("contaminated", "clean")
VARIANTS = ("original", "rephrased")


def task_name(benchmark: str, variant: str, part: str) -> str:
    return f"exp_{benchmark}_{variant}_{part}"


def subtask_names(bench, name: str) -> list[str]:
    """The lm-eval tasks a (variant, part) is scored by: itself, or one per subset under a group."""
    subsets = bench.subsets()
    return [name] if subsets == [None] else [f"{name}_{s}" for s in subsets]


def _task_yaml(bench, spec: str, name: str, variant: str, part: str, subset, part_file: Path, metadata: dict) -> str:
    kwargs = {"benchmark": spec, "variant": variant, "part": part, **({"subset": subset} if subset else {})}
    lines = [
        f"include: {json.dumps(str(bench.task_yaml(variant, subset)))}",
        f"task: {name}",
        "tag:",
        "  - rephraser_experiment",
        "dataset_kwargs:",
        *[f"  {k}: {json.dumps(v)}" for k, v in kwargs.items()],
        "metadata:",
        "  version: 1.0",
        f"  part_file: {json.dumps(str(part_file.resolve()))}",
        *[f"  {k}: {json.dumps(v)}" for k, v in metadata.items()],
    ]
    return "\n".join(lines) + "\n"


def write_tasks(folder: Path, cfg, part_file: Path) -> dict[tuple, str]:
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"data_dir": cfg.data_dir} if cfg.data_dir else {}
    names = {}
    for spec in cfg.benchmarks:
        bench = get_benchmark(spec, data_dir=cfg.data_dir)
        for variant in VARIANTS:
            for part in PARTS:
                name = task_name(bench.name, variant, part)
                names[(bench.name, variant, part)] = name
                subtasks = subtask_names(bench, name)
                for subset, sub in zip(bench.subsets(), subtasks):
                    text = _task_yaml(bench, spec, sub, variant, part, subset, part_file, metadata)
                    atomic_write_text(folder / f"{sub}.yaml", text)
                if len(subtasks) > 1:
                    group = f"group: {name}\ntask:\n" + "".join(f"  - {t}\n" for t in subtasks)
                    metrics = "".join(f"  - metric: {m}\n    weight_by_size: true\n" for m, _ in bench.metrics)
                    atomic_write_text(
                        folder / f"_{name}.yaml", f"{group}aggregate_metric_list:\n{metrics}metadata:\n  version: 1.0\n"
                    )
    return names
