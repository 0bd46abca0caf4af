"""`rephraser detect scan ... --emit-tasks DIR [--flag-by D]`: the scan's verdicts as lm-eval tasks.

    lm_eval run --include_path DIR --tasks gsm8k_decontaminated ...     # full, clean and flagged scores side by side

For each scanned test set, DIR gets `<name>_full` (every scanned item), `<name>_clean` (the items the detector did
not flag) and `<name>_flagged` (the ones it flagged), and a group `<name>_decontaminated` listing the three. Each
task includes the source task's YAML, so prompts, generation settings, metrics and filters are the source's;
only the docs are restricted:
- our benchmarks (the source is `original_<name>`, per subject for MMLU, with size-weighted groups `mmlu_clean`, ...):
  rephraser.tasks.lmeval.dataset keeps the ids of one part of DIR/parts.json (the experiment's mechanism);
- any lm-eval task scanned with --task X (its YAML included): rephraser.tasks.lmeval.SelectedDocsTask keeps the
  evaluated docs at the positions listed in DIR/parts.json, after X's own process_docs (positions are how
  TaskBenchmark numbers X's items: X/0, X/1, ...).

Which items are flagged (--flag-by): one detector (ngram13, ngram10, embedding, llm, pipeline) or `any` of the
scan's. True is flagged. An undecided item puts the item in neither part (it stays in `_full`) and is counted:
a judge's (no verdict), and an n-gram detector's (an item shorter than n words: no row can share an n-gram with
it, so "clean" would be a claim the test cannot make; a verbatim copy of a short item was in `_clean`). Every
emitted task draws its few-shot examples per item (rephraser.tasks.lmeval.ItemSeededTask), so an item has the same
prompt in `_full`, `_clean` and `_flagged`. A part with no item gets no task (lm-eval cannot score an empty
task): the message says so and the group lists what exists.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.errors import ConfigError, InputError

FLAG_BY = ("ngram13", "ngram10", "embedding", "llm", "pipeline", "any")
PARTS = ("clean", "flagged")
DEFAULT_FLAG_BY = {"ngram": "ngram13", "embedding": "embedding", "llm": "llm", "pipeline": "pipeline"}


def check_flag_by(flag_by: str | None, detectors: list[str], method: str) -> str:
    """The detector the parts follow: given (one the scan runs, or any), else the method's own."""
    chosen = flag_by or DEFAULT_FLAG_BY[method]
    if chosen not in FLAG_BY:
        raise ConfigError(f"flag_by: {chosen!r} is not one of {list(FLAG_BY)}")
    if chosen != "any" and chosen not in detectors:
        raise ConfigError(f"flag_by: --method {method} does not run the {chosen} detector (it runs {detectors})")
    return chosen


def part_of(flags: dict, flag_by: str) -> str | None:
    """clean | flagged | None (undecided) for one item's detector flags."""
    names = list(flags) if flag_by == "any" else [flag_by]
    values = [flags[n] for n in names]
    if any(v is True for v in values):
        return "flagged"
    return None if any(v is None for v in values) else "clean"


def split_items(results: dict, flag_by: str) -> tuple[dict[str, list[str]], int]:
    """({clean: ids, flagged: ids}, undecided count), ids in the scan's order."""
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    undecided = 0
    for item in results["items"]:
        part = part_of(item["flagged"], flag_by)
        if part is None:
            undecided += 1
        else:
            parts[part].append(item["id"])
    return parts, undecided


def _yaml(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _benchmark_task(bench, spec: str, name: str, part: str | None, subset, parts_file: Path, data_dir) -> str:
    kwargs = {"benchmark": spec, "variant": "original", **({"subset": subset} if subset else {})}
    if part:
        kwargs["part"] = part
    metadata = {"version": 1.0, "part_file": str(parts_file.resolve()), **({"data_dir": data_dir} if data_dir else {})}
    return _yaml(
        [
            f"{HEADER}: {bench.task_name('original', subset)}, "
            + (f"its {part} items only." if part else "every scanned item."),
            f"include: {json.dumps(str(bench.task_yaml('original', subset).resolve()))}",
            f"task: {name}",
            "class: !function rephraser.tasks.lmeval.ItemSeededTask",
            "tag:",
            "  - rephraser_decontaminated",
            "dataset_kwargs:",
            *[f"  {k}: {json.dumps(v)}" for k, v in kwargs.items()],
            "metadata:",
            *[f"  {k}: {json.dumps(v)}" for k, v in metadata.items()],
        ]
    )


def _lm_eval_task(bench, name: str, part: str | None, parts_file: Path) -> str:
    source = Path(bench.entry.yaml_path).resolve()
    lines = [
        f"{HEADER}: {bench.task_name}, "
        + (f"its {part} items only (by position in its evaluated docs)." if part else "every scanned item."),
        f"include: {json.dumps(str(source))}",
        f"task: {name}",
        "tag:",
        "  - rephraser_decontaminated",
    ]
    lines += [f"class: !function rephraser.tasks.lmeval.{'SelectedDocsTask' if part else 'ItemSeededTask'}"]
    metadata = dict(getattr(bench.task.config, "metadata", None) or {})
    metadata.update({"version": metadata.get("version", 1.0), "selection_file": str(parts_file.resolve())})
    metadata.update({"selection": f"{bench.task_name}:{part}"} if part else {})
    lines += ["metadata:", *[f"  {k}: {json.dumps(v)}" for k, v in metadata.items()]]
    return _yaml(lines)


HEADER = "# Generated by `rephraser detect scan --emit-tasks`"


def _group(name: str, tasks: list[str], metrics=()) -> str:
    lines = [f"{HEADER}: a group.", f"group: {name}", "task:", *[f"  - {t}" for t in tasks]]
    if metrics:
        lines += ["aggregate_metric_list:"]
        lines += [f"  - metric: {m}\n    weight_by_size: true" for m in metrics]
    return _yaml(lines + ["metadata:", "  version: 1.0"])


def emit_tasks(folder: Path, bench, spec: str, results: dict, flag_by: str, data_dir=None, log=print) -> dict:
    """Write the tasks; returns {"flag_by", "clean", "flagged", "undecided", "tasks", "group", "command"}."""
    parts, undecided = split_items(results, flag_by)
    is_task = hasattr(bench, "entry")
    if is_task and bench.entry.kind.name != "TASK":
        raise ConfigError(f"emit_tasks: {bench.task_name} is a Python task class; only YAML tasks can be restricted")
    base = bench.task_name if is_task else bench.name
    parts_file = folder / "parts.json"
    _refuse_another_scans_folder(parts_file, base, spec, is_task)
    if is_task:
        from rephraser.tasks.lmeval import doc_sha256

        docs = bench.task.eval_docs
        positions = {f"{base}:{p}": [int(i.rsplit("/", 1)[1]) for i in ids] for p, ids in parts.items()}
        positions.update({f"{k}:sha256": [doc_sha256(docs[n]) for n in v] for k, v in list(positions.items())})
        atomic_write_text(parts_file, json.dumps(positions, indent=1) + "\n")
    else:
        atomic_write_text(parts_file, json.dumps({spec: parts}, indent=1) + "\n")
    written: dict[str, list[str]] = {}
    for part in (None, *PARTS):
        label = part or "full"
        ids = [i["id"] for i in results["items"]] if part is None else parts[part]
        if not ids:
            log(f"--emit-tasks: no {label} items (by {flag_by}): no {base}_{label} task written")
            continue
        written[label] = _write_part(folder, bench, spec, base, part, ids, parts_file, data_dir, is_task)
    group = f"{base}_decontaminated"
    top = [f"{base}_{label}" for label in written]
    atomic_write_text(folder / f"_{group}.yaml", _group(group, top))
    _remove_stale(folder, {f"_{group}.yaml"} | {f"{n}.yaml" for names in written.values() for n in names}
                  | {f"_{t}.yaml" for t in top})  # fmt: skip
    command = f"lm_eval run --include_path {folder.resolve()} --tasks {group} ..."
    log(
        f"--emit-tasks: {len(parts['clean'])} clean, {len(parts['flagged'])} flagged, {undecided} undecided "
        f"(by {flag_by}) -> {folder}; run: {command}"
    )
    return {
        "flag_by": flag_by,
        "clean": len(parts["clean"]),
        "flagged": len(parts["flagged"]),
        "undecided": undecided,
        "tasks": top,
        "group": group,
        "command": command,
    }


def _write_part(folder, bench, spec, base, part, ids, parts_file, data_dir, is_task) -> list[str]:
    """The task (or per-subset tasks and their group) of one part; returns the task names."""
    label = part or "full"
    if is_task:
        name = f"{base}_{label}"
        atomic_write_text(folder / f"{name}.yaml", _lm_eval_task(bench, name, part, parts_file))
        return [name]
    subsets = list(dict.fromkeys(bench.subset_of(i) for i in ids))
    if subsets == [None]:
        name = f"{base}_{label}"
        atomic_write_text(folder / f"{name}.yaml", _benchmark_task(bench, spec, name, part, None, parts_file, data_dir))
        return [name]
    names = []
    for subset in subsets:
        name = f"{base}_{subset}_{label}"
        text = _benchmark_task(bench, spec, name, part, subset, parts_file, data_dir)
        atomic_write_text(folder / f"{name}.yaml", text)
        names.append(name)
    metrics = list(dict.fromkeys(m for m, _ in bench.metrics))
    atomic_write_text(folder / f"_{base}_{label}.yaml", _group(f"{base}_{label}", names, metrics))
    return names


def _refuse_another_scans_folder(parts_file: Path, base: str, spec: str, is_task: bool) -> None:
    """DIR holding the tasks of another test set: this run would rewrite its parts.json and remove its tasks."""
    if not parts_file.is_file():
        return
    try:
        keys = list(json.loads(parts_file.read_text()))
    except (ValueError, TypeError):
        raise InputError(
            parts_file, "not a parts.json written by --emit-tasks: choose another --emit-tasks DIR"
        ) from None
    mine = (lambda k: k.split(":", 1)[0] == base) if is_task else (lambda k: k == spec)
    others = [k for k in keys if not mine(k)]
    if others:
        raise InputError(parts_file, f"holds the tasks of another scan ({others[:3]}): choose another --emit-tasks DIR")


def _remove_stale(folder: Path, kept: set[str]) -> None:
    """Tasks an earlier --emit-tasks run wrote here that this one did not (a part now empty): they would name
    selections parts.json no longer has. Only files with our header are touched."""
    for path in folder.glob("*.yaml"):
        if path.name not in kept and path.read_text(encoding="utf-8").startswith(HEADER):
            path.unlink()
