"""lm-eval tasks for the experiment: each benchmark variant (original, rephrased) restricted to each part.

    names = write_tasks(folder, cfg, part_file)     # {(benchmark, variant, part): task or group name}

Each YAML includes our own task template (the same prompt, generation settings and metrics as
`original_gsm8k` / `rephrased_gsm8k` / ... ) and swaps in rephraser.experiment.parts.part_dataset, which keeps the
items of one part. MMLU gets one task per subject and a size-weighted group per variant and part, as
`rephrased_mmlu` does. One lm-eval run per model scores every variant x part; the numbers in its result file
are the experiment's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.data.sources import MMLU_REPHRASED_SUBJECTS
from rephraser.tasks import TASKS_DIR

TEMPLATES = {
    "gsm8k": TASKS_DIR / "gsm8k" / "_gsm8k_template",
    "humaneval": TASKS_DIR / "humaneval" / "_humaneval_template",
    "mmlu": TASKS_DIR / "mmlu" / "_mmlu_template",
}
PARTS = ("contaminated", "clean")


def task_name(benchmark: str, variant: str, part: str) -> str:
    return f"exp_{benchmark}_{variant}_{part}"


def _task_yaml(
    name: str, benchmark: str, variant: str, part: str, part_file: Path, metadata: dict, subject: str | None = None
) -> str:
    kwargs = {"benchmark": benchmark, "variant": variant, "part": part, **({"subject": subject} if subject else {})}
    lines = [
        f"include: {json.dumps(str(TEMPLATES[benchmark]))}",
        f"task: {name}",
        "tag:",
        "  - rephraser_experiment",
        "custom_dataset: !function rephraser.experiment.parts.part_dataset",
        "dataset_kwargs:",
    ]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in kwargs.items()]
    if subject:
        lines += [
            f"task_alias: {subject}",
            'description: "The following are multiple choice questions '
            f'(with answers) about {subject.replace("_", " ")}.\\n\\n"',
        ]
    lines += ["metadata:", "  version: 1.0", f"  part_file: {json.dumps(str(part_file.resolve()))}"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in metadata.items()]
    return "\n".join(lines) + "\n"


def write_tasks(folder: Path, cfg, part_file: Path) -> dict[tuple, str]:
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"data_dir": cfg.data_dir} if cfg.data_dir else {}
    names = {}
    for benchmark in cfg.benchmarks:
        for variant in ("original", "rephrased"):
            for part in PARTS:
                name = task_name(benchmark, variant, part)
                names[(benchmark, variant, part)] = name
                if benchmark != "mmlu":
                    atomic_write_text(
                        folder / f"{name}.yaml", _task_yaml(name, benchmark, variant, part, part_file, metadata)
                    )
                    continue
                subtasks = [f"{name}_{s}" for s in MMLU_REPHRASED_SUBJECTS]
                for subject, sub in zip(MMLU_REPHRASED_SUBJECTS, subtasks):
                    atomic_write_text(
                        folder / f"{sub}.yaml", _task_yaml(sub, benchmark, variant, part, part_file, metadata, subject)
                    )
                atomic_write_text(
                    folder / f"_{name}.yaml",
                    f"group: {name}\ntask:\n"
                    + "".join(f"  - {t}\n" for t in subtasks)
                    + "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\nmetadata:\n  version: 1.0\n",
                )
    return names
