"""The items `rephraser detect model` scores, from a benchmark (or lm-eval task) and an experiment's parts.

    items, source = select_items(cfg)       # [Item(id, text, part, twin, prompt, question, choices, answer)]

The text of an item is the benchmark's training text of the chosen variant (the evaluated prompt and its answer:
what a model contaminated with the item would have seen); its twin, for `paired`, is the other variant's training
text of the same item (an item without one gets no paired score, counted); its prompt, for `cdd`, is the evaluated
prompt; a multiple-choice doc carries its question, choices and answer for `ts-guess`. With `--parts`, the items
are exactly the parts' ids (contaminated first), each labelled; an id the benchmark does not have (a parts file
from another benchmark, data that changed) is an error naming it, never dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from rephraser.detect.model.items import Item
from rephraser.errors import InputError

OTHER = {"original": "rephrased", "rephrased": "original"}


def select_items(cfg) -> tuple[list[Item], str]:
    from rephraser.benchmarks import from_settings

    bench = from_settings(cfg.benchmark, cfg.task, cfg.field, cfg.include_path, data_dir=cfg.data_dir)
    docs = {d["id"]: d for d in bench.docs(cfg.variant)}
    texts = bench.training_texts(cfg.variant)
    twins = {}
    if "paired" in cfg.detectors and OTHER[cfg.variant] in bench.variants:
        twins = bench.training_texts(OTHER[cfg.variant])
    wanted, source = _wanted(cfg, bench, list(docs))
    missing = [i for i, _ in wanted if i not in docs or i not in texts]
    if missing:
        raise InputError(source, f"{len(missing)} id(s) are not {cfg.variant} {bench.title} items with a text: "
                         f"{missing[:5]} (a parts file of another benchmark, or data that changed?)")  # fmt: skip
    items = [_item(bench, docs[i], texts[i], twins.get(i), part) for i, part in wanted]
    return _limited(items, cfg.limit), source


def _limited(items: list[Item], limit: int | None) -> list[Item]:
    """The first `limit` items, of each part when they are labelled: a limit that cut the clean part away (the
    contaminated ones come first) would leave nothing to score against."""
    if not limit:
        return items
    if all(item.part is None for item in items):
        return items[:limit]
    return [item for part in ("contaminated", "clean") for item in [i for i in items if i.part == part][:limit]]


def _wanted(cfg, bench, ids: list[str]) -> tuple[list[tuple[str, str | None]], str]:
    if cfg.parts:
        path = Path(cfg.parts)
        if not path.is_file():
            raise InputError(path, "parts: no such file (an experiment's parts.json)")
        try:
            parts = json.loads(path.read_text())[bench.name]
            return [(i, part) for part in ("contaminated", "clean") for i in parts[part]], str(path)
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(path, f"not an experiment's parts.json with the parts of {bench.name}") from None
    if cfg.items:
        return [(i, None) for i in cfg.items], "items"
    return [(i, None) for i in ids], bench.name


def _item(bench, doc: dict, text: str, twin: str | None, part: str | None) -> Item:
    choices = doc.get("choices")
    multiple_choice = isinstance(choices, list) and isinstance(doc.get("answer"), int)
    prompt = bench.description(doc) + bench.prompt(doc)  # the evaluated 0-shot context (cdd samples from it)
    return Item(id=doc["id"], text=text, part=part, twin=twin or None, prompt=prompt,
                question=doc.get("question") if multiple_choice else None,
                choices=list(choices) if multiple_choice else None,
                answer=doc["answer"] if multiple_choice else None)  # fmt: skip


def detect_model(cfg, log=print) -> dict:
    """`rephraser detect model`: select the items, score every detector, write results.json, report.md, charts.
    --out is checked (a directory, writable, replacing no input) before any item is scored."""
    from rephraser.atomic import remove_dirs
    from rephraser.detect.outputs import prepare_outputs

    created = prepare_outputs(Path(cfg.out), ("results.json", "report.md", "config.yaml"), [cfg.parts])
    try:
        return _detect_model(cfg, log)
    except BaseException:
        remove_dirs(created)  # only what it made, and only the directories left empty
        raise


def _detect_model(cfg, log) -> dict:
    from rephraser.config import save_config
    from rephraser.detect.model.report import write_outputs
    from rephraser.detect.model.run import score_items

    items, source = select_items(cfg)
    labelled = sum(item.part is not None for item in items)
    log(
        f"{len(items)} items of {cfg.benchmark or cfg.task} "
        f"({cfg.variant}){f', {labelled} labelled' if labelled else ''}"
    )
    results = score_items(cfg, items, log=log, source=source)
    report = write_outputs(cfg.out, results)
    save_config(cfg, Path(cfg.out) / "config.yaml")
    for name, m in results["metrics"].items():
        if m.get("auroc") is not None:
            log(f"  {name:8s} AUROC {m['auroc']:.3f} [{m['ci_low']:.2f}, {m['ci_high']:.2f}]")
    log(f"report: {report}")
    return results
