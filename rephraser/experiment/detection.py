"""Detectability beside the score gain: model-level detectors on every model of the experiment, the base model
included (the control), over both parts, and the ConStat-style benchmark-level test.

    detect_step(steps, out, cfg, "rephrased", model_path, base_path, pool, parts)   # rephraser detect model
    rows = read_detectability(out, models, benches)        # per model, benchmark, detector: AUROC [CI], TPR
    tests = constat_tests(items, conditions, benches, cfg)  # per trained condition: its gap vs the base model's

Each model is scored on the ORIGINAL texts of both parts' items (the benchmark's training text of the original:
the evaluated prompt and its answer), labelled contaminated / clean by parts.json, by `rephraser detect model`
in a subprocess (its own config file, like every step). `ref` compares with the base model (so the base model
itself is not scored by it); `paired` compares each item with its rephrased twin. A detector that separates the
parts on the BASE model measures the split, not contamination: the report shows both side by side.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rephraser.errors import ConfigError
from rephraser.experiment.identity import file_sha256, model_fingerprint
from rephraser.experiment.steps import python_module

# Set by the experiment for each step: not in its `detect:` settings.
RESERVED = ("model", "out", "benchmark", "task", "field", "include_path", "variant", "parts", "items", "limit",
            "data_dir", "reference", "detectors")  # fmt: skip


def check_settings(cfg) -> None:
    """The experiment's `detectors` and `detect` settings, validated as `rephraser detect model` would."""
    from rephraser.detect.model.config import DetectModelConfig

    if not cfg.detectors:
        return
    reserved = sorted(set(cfg.detect) & set(RESERVED))
    if reserved:
        raise ConfigError(f"detect: {reserved} are set by the experiment, not in its config")
    known = {f.name for f in dataclasses.fields(DetectModelConfig)}
    unknown = sorted(set(cfg.detect) - known)
    if unknown:
        raise ConfigError(f"detect: unknown rephraser detect model setting(s) {unknown}")
    try:
        DetectModelConfig(model="m", out="o", benchmark=cfg.benchmarks[0], detectors=list(cfg.detectors),
                          reference="m" if "ref" in cfg.detectors else None, **cfg.detect)  # fmt: skip
    except ConfigError as e:
        raise ConfigError(f"detectors / detect: {e}") from None


def _detectors(cfg, name: str) -> list[str]:
    return [d for d in cfg.detectors if not (name == "base" and d == "ref")]  # the base model against itself


def detect_step(steps, out: Path, cfg, name: str, model_path: str, base_path: str, pool, docs_fingerprint) -> None:
    from rephraser.config import save_config
    from rephraser.detect.model.config import DetectModelConfig

    bench = pool.bench.name
    folder = out / "detect" / name / bench
    detectors = _detectors(cfg, name)
    settings = DetectModelConfig(
        model=model_path, out=str(folder), benchmark=pool.spec, variant="original", parts=str(out / "parts.json"),
        data_dir=cfg.data_dir, detectors=detectors, reference=base_path if "ref" in detectors else None,
        seed=cfg.seed, **cfg.detect,
    )  # fmt: skip
    config_file = save_config(settings, out / "configs" / f"detect-{name}-{bench}.yaml")
    inputs = {"model": model_fingerprint(model_path), "parts": file_sha256(out / "parts.json"),
              "docs": docs_fingerprint, "settings": {"detectors": detectors, **cfg.detect, "seed": cfg.seed},
              "reference": model_fingerprint(base_path) if "ref" in detectors else None}  # fmt: skip
    command = [*python_module("rephraser.cli", "detect", "model"), "--config", str(config_file)]
    env = {"REPHRASER_DATA_DIR": cfg.data_dir} if cfg.data_dir else {}
    steps.run(f"detect/{name}/{bench}", command, inputs, complete=(folder / "results.json").is_file, env=env,
              rerun_on_change=True)  # fmt: skip


def reversed_auroc(m: dict) -> dict:
    """`paired` (original minus rephrased twin) is oriented for verbatim contamination. A model trained on the
    rephrases prefers the twin, so its contaminated items score LOW: an AUROC below 0.5 is separation the other way.
    The same scores ranked the other way give 1 - AUROC and the interval [1 - high, 1 - low] (percentiles mirror);
    shown beside it, named as such, because a user who does not know which form leaked cannot pick the side."""
    return {"auroc": 1 - m["auroc"], "ci_low": 1 - m["ci_high"], "ci_high": 1 - m["ci_low"]}


def read_detectability(out: Path, models: list[str], benches: list[str]) -> list[dict]:
    rows = []
    for model in models:
        for bench in benches:
            path = out / "detect" / model / bench / "results.json"
            result = json.loads(path.read_text())
            for detector, m in result["metrics"].items():
                rows.append({"model": model, "benchmark": bench, "detector": detector, **{
                    k: m.get(k) for k in ("auroc", "ci_low", "ci_high", "tpr_at_1fpr", "tpr_at_5fpr",
                                          "n_contaminated", "n_clean", "note")}})  # fmt: skip
                if detector == "paired" and m.get("auroc") is not None:
                    rows[-1]["reversed"] = reversed_auroc(m)
            if result.get("baseline"):
                b = result["baseline"]
                rows.append({"model": model, "benchmark": bench, "detector": "blind baseline",
                             **{k: b.get(k) for k in ("auroc", "ci_low", "ci_high")}})  # fmt: skip
    return rows


def constat_tests(items: list[dict], conditions: list[str], benches: dict, cfg) -> list[dict]:
    """Per trained condition and benchmark (its first metric): the accuracy gap original - rephrased over both parts,
    against the base model's gap on the same items (rephraser.detect.model.constat)."""
    from rephraser.detect.model.constat import constat_test

    out = []
    for name, bench in benches.items():
        metric = bench.main_metric()
        value = {(i["model"], i["variant"], i["id"]): i["value"] for i in items
                 if i["benchmark"] == name and i["metric"] == metric}  # fmt: skip
        ids = sorted({i for (m, v, i) in value if m == "base" and v == "original"})
        base = ([value["base", "original", i] for i in ids], [value["base", "rephrased", i] for i in ids])
        for condition in conditions:
            target = ([value[condition, "original", i] for i in ids], [value[condition, "rephrased", i] for i in ids])
            test = constat_test(*target, {"base": base}, resamples=cfg.bootstrap, seed=cfg.seed)
            out.append({"condition": condition, "benchmark": name, "metric": metric, **test})
    return out
