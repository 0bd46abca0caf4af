"""`rephraser experiment` on a miniature (the tiny model, 3 + 3 GSM-8K items): every step runs through the project's
own commands, the numbers are lm-eval's, the parts are disjoint, an interrupted experiment resumes, bad configs
stop before anything runs, and the report renders."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rephraser.benchmarks import sources

TRAIN = {"max_steps": 120, "lr": 3.0e-3, "warmup_ratio": 0, "micro_batch_rows": 4, "max_seq_len": 256, "save_every": 20}


def experiment_yaml(tmp_path, base_model, out, **over) -> Path:
    config = {
        "name": "mini",
        "model": str(base_model),
        "benchmarks": ["gsm8k"],
        "contaminated": 3,
        "clean": 3,
        "seed": 1,
        "conditions": [{"name": "rephrased", "train_on": "rephrased"}],
        "train": TRAIN,
        "tokenize": {"max_seq_len": 256},
        "batch_size": "4",
        "model_args": "dtype=float32",
        "out": str(out),
        "bootstrap": 500,
        "gen_kwargs": {"max_gen_toks": 24},  # '#### N' and a stop: the tiny model's run-ons cost minutes
        **over,
    }
    path = tmp_path / f"{Path(out).name}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if v is not None}))  # None: leave the key out
    return path


def rephraser(*args, env=None, timeout=900):
    exe = Path(sys.executable).with_name("rephraser")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})},
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_llama, data_dir):
    """One uninterrupted miniature experiment, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("experiment")
    done = rephraser(
        "experiment", "--config", experiment_yaml(tmp, tiny_llama, tmp / "a"), env={"REPHRASER_DATA_DIR": str(data_dir)}
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return tmp / "a", done


@pytest.mark.slow
def test_every_step_runs_and_the_numbers_are_lm_evals(straight, data_dir):
    out, done = straight
    steps = json.loads((out / "steps.json").read_text())
    assert set(steps) == {"tokenize/rephrased", "train/rephrased", "evaluate/base", "evaluate/rephrased",
                          "detect/base/gsm8k", "detect/rephrased/gsm8k"}  # fmt: skip
    assert all(s["exit_status"] == 0 for s in steps.values())
    assert (
        "-m rephraser.train" in steps["train/rephrased"]["command"]
        and "lm_eval run" in steps["evaluate/base"]["command"]
    )
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 2 * 2 * 2 * 2  # models x parts x variants x metrics (strict, flexible)
    for model in ("base", "rephrased"):
        lm_eval = json.loads(next((out / "eval" / model).rglob("results_*.json")).read_text())["results"]
        for row in (r for r in rows if r["model"] == model):
            task = f"exp_gsm8k_{row['variant']}_{row['part']}"
            key = "exact_match," + re.search(r"\((.*)\)", row["metric"])[1]
            assert row["value"] == lm_eval[task][key] and row["n"] == 3
            assert row["ci_low"] <= row["value"] <= row["ci_high"]
    trained = {(r["part"], r["variant"], r["metric"]): r["value"] for r in rows if r["model"] == "rephrased"}
    assert (
        trained["contaminated", "rephrased", "exact_match (strict-match)"] == 1.0
    )  # it memorised what it was trained on
    assert "contamination effect, rephrased on gsm8k" in done.stdout


@pytest.mark.slow
def test_parts_are_disjoint_and_training_holds_only_contaminated_items(straight, data_dir):
    out, _ = straight
    parts = json.loads((out / "parts.json").read_text())["gsm8k"]
    assert len(parts["contaminated"]) == 3 and len(parts["clean"]) == 3
    assert not set(parts["contaminated"]) & set(parts["clean"])
    lmsys = sources.read_rephrased_texts(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")
    trained_on = [json.loads(line)["text"] for line in (out / "data" / "rephrased.jsonl").read_text().splitlines()]
    assert trained_on == [lmsys[int(i.split("/")[1])] for i in parts["contaminated"]]
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert {i["id"] for i in items if i["part"] == "clean"} == set(parts["clean"])


@pytest.mark.slow
def test_the_report_renders_and_matches_results(straight):
    out, _ = straight
    report = (out / "report.md").read_text()
    rows = json.loads((out / "results.json").read_text())["rows"]
    sections, current = {}, None
    for line in report.splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:], [])
        elif line.startswith("## "):
            current = None
        elif current is not None:
            current.append(line)
    for row in rows:  # each score appears in the report's table as results.json has it
        table = sections[f"{row['benchmark']}: {row['metric']}"]
        cells = next(line for line in table if line.startswith(f"| {row['model']} | {row['variant']} |")).split("|")
        cell = cells[3] if row["part"] == "contaminated" else cells[4]
        assert cell.strip() == f"{row['value']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] (n={row['n']})"
    from matplotlib.image import imread

    for name in ("effect.png", "overlap.png", "scores_gsm8k_exact_match_strict-match.png"):
        image = imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01  # a real chart, not a blank canvas
        assert f"![{name}]({name})" in report
    assert "## Why n-gram decontamination misses it" in report and "lm_eval run" in report and "## Versions" in report


@pytest.mark.slow
def test_interrupted_between_steps_and_inside_training_resumes_to_the_same_results(
    tmp_path, straight, tiny_llama, data_dir
):
    out = tmp_path / "b"
    config = experiment_yaml(tmp_path, tiny_llama, out)
    exe = Path(sys.executable).with_name("rephraser")
    env = {**os.environ, "REPHRASER_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for wait_for in (
        lambda: (out / "data" / "rephrased.tok.json").is_file(),  # between steps
        lambda: list((out / "models" / "rephrased" / "checkpoints").glob("step-00000040")),
    ):  # inside training
        proc = subprocess.Popen(
            [str(exe), "experiment", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not wait_for() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the experiment and the step it runs
        proc.wait()
    assert not (out / "models" / "rephrased" / "model").exists()
    resumed = rephraser("experiment", "--config", config, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "[tokenize/rephrased] complete, skipped" in resumed.stdout
    log = (out / "logs" / "train_rephrased.log").read_text()
    assert "resumed from" in log  # training continued from its last checkpoint
    a, b = (json.loads((d / "results.json").read_text())["rows"] for d in (straight[0], out))
    assert [r["value"] for r in a] == [r["value"] for r in b]
    again = rephraser("experiment", "--config", config, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert again.stdout.count("complete, skipped") == 6  # nothing redone
    changed = experiment_yaml(tmp_path, tiny_llama, out, seed=2)
    refused = rephraser("experiment", "--config", changed, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert refused.returncode == 1 and "another configuration (seed: 1 there, 2 now)" in refused.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate": 1}, "unknown key(s) ['learning_rate']"),
        ({"model": "./no/such/model"}, "no such directory"),
        (
            {"contaminated_ids": ["gsm8k/1", "gsm8k/2"], "clean_ids": ["gsm8k/2"], "contaminated": None, "clean": None},
            "the parts overlap (['gsm8k/2'])",
        ),
        ({"contaminated": 1000, "clean": 400}, "but gsm8k has only 1315"),
        ({"conditions": [{"name": "x", "train_on": "everything"}]}, "train_on 'everything' is not one of"),
        ({"train": {"lr": "fast"}}, "train: lr: expected float, got str"),
    ],
)
@pytest.mark.slow
def test_bad_configs_stop_before_anything_runs(tmp_path, tiny_llama, data_dir, change, message):
    out = tmp_path / "x"
    done = rephraser(
        "experiment",
        "--config",
        experiment_yaml(tmp_path, tiny_llama, out, **change),
        env={"REPHRASER_DATA_DIR": str(data_dir)},
        timeout=300,
    )
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not out.exists()


def test_the_packaged_experiment_configs_are_valid(data_dir):
    from rephraser.config import load_yaml
    from rephraser.configs import CONFIGS_DIR
    from rephraser.experiment.config import ExperimentConfig

    names = sorted(p.name for p in (CONFIGS_DIR / "experiments").glob("*.yaml"))
    assert "smollm2-gsm8k-demo.yaml" in names and "smollm2-gsm8k-detectability.yaml" in names and len(names) == 9
    for name in names:
        cfg = ExperimentConfig(**load_yaml(CONFIGS_DIR / "experiments" / name, ExperimentConfig))
        assert cfg.benchmarks and cfg.conditions
    study = ExperimentConfig(**load_yaml(CONFIGS_DIR / "experiments" / "llama2-13b-gsm8k.yaml", ExperimentConfig))
    assert (study.published["base"], study.published["contaminated"], study.published["gpt4"]) == (28.7, 95.3, 92.0)


@pytest.mark.slow
def test_data_changed_under_a_finished_experiment_is_refused_not_reported(tmp_path, straight, tiny_llama, data_dir):
    """Issue 19 item 4: every step's outputs existed, so a rerun on other data skipped them all and reported the old
    models against the new data. Now the recorded inputs are compared: the rerun stops, naming what changed."""
    out, _ = straight
    parts = json.loads((out / "parts.json").read_text())["gsm8k"]
    changed = int(parts["clean"][0].split("/")[1])
    mirror = tmp_path / "mirror"
    (mirror / "gsm8k").mkdir(parents=True)
    for name in ("mmlu", "lmsys_rephrase"):
        (mirror / name).symlink_to(data_dir / name)
    (mirror / "gsm8k" / "train.jsonl").symlink_to(data_dir / "gsm8k" / "train.jsonl")
    rows = (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()
    row = json.loads(rows[changed])
    rows[changed] = json.dumps({**row, "question": row["question"] + " Answer in words."})
    (mirror / "gsm8k" / "test.jsonl").write_text("\n".join(rows) + "\n")
    untouched = {name: (out / name).stat().st_mtime_ns for name in ("results.json", "report.md", "items.jsonl")}
    config = next(out.parent.glob("a.yaml"))
    rerun = rephraser("experiment", "--config", config, env={"REPHRASER_DATA_DIR": str(mirror)})
    assert rerun.returncode == 1 and "step evaluate/base was completed from other inputs" in rerun.stderr
    assert "docs.gsm8k/original/clean" in rerun.stderr and "Traceback" not in rerun.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in untouched} == untouched  # nothing reported
