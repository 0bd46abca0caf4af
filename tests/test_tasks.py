"""The lm-eval tasks: every YAML loads, the plain `lm_eval` command finds and runs them, gold answers score 100 %."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rephraser.tasks import TASKS_DIR

EXPECTED_DOCS = {
    "original_gsm8k": 1319, "rephrased_gsm8k": 1319,
    "original_humaneval": 164, "rephrased_humaneval": 145,  # 17 empty placeholders, 2 not valid Python
    "rephrased_mmlu_abstract_algebra": 96, "rephrased_mmlu_high_school_us_history": 192, "rephrased_mmlu_sociology": 197,
    "rephrased_mmlu_zh_abstract_algebra": 100, "rephrased_mmlu_zh_high_school_us_history": 202,
    "rephrased_mmlu_zh_sociology": 201, "original_mmlu_abstract_algebra": 100, "original_mmlu_professional_law": 1534,
}
# rephrased HumanEval: the LMSYS rephrase changed the behaviour of 13 of 145 solutions (the original tests fail on them).
REPHRASED_HUMANEVAL_GOLD_PASSES = 132


def yaml_names() -> dict[str, str]:
    names = {}
    for path in TASKS_DIR.rglob("*.yaml"):
        match = re.search(r"^(task|group): (\S+)$", path.read_text(), re.M)
        assert match, f"{path} names no task or group"
        names[match[2]] = match[1]
    return names


@pytest.fixture(scope="session")
def tm(data_dir):
    os.environ["REPHRASER_DATA_DIR"] = str(data_dir)
    from rephraser.tasks import task_manager

    return task_manager()


def lm_eval(*args, env=None, cwd=None):
    exe = Path(sys.executable).with_name("lm_eval")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})})


def test_every_yaml_is_indexed_and_every_task_loads(tm):
    names = yaml_names()
    assert len(names) == 72 and {n for n, kind in names.items() if kind == "group"} >= {
        "original_mmlu", "rephrased_mmlu", "rephrased_mmlu_zh", "gsm8k_contamination", "humaneval_contamination"}
    missing = sorted(set(names) - set(tm.all_tasks))  # a YAML that fails to parse is skipped silently by lm-eval
    assert not missing
    leaves = [n for n, kind in names.items() if kind == "task"]
    loaded = tm.load(leaves)["tasks"]
    assert sorted(loaded) == sorted(leaves)
    for name, count in EXPECTED_DOCS.items():
        assert len(list(loaded[name].eval_docs)) == count, name
    assert sum(len(list(loaded[f"original_mmlu_{s}"].eval_docs)) for s in _subjects()) == 14042
    assert sorted(tm.load(["rephraser"])["tasks"]) == sorted(leaves)  # the tag selects every task


def _subjects():
    from rephraser.tasks.mmlu.generate import SUBJECTS

    return SUBJECTS


def test_generated_mmlu_files_are_current():
    from rephraser.tasks.mmlu.generate import expected_files

    folder = TASKS_DIR / "mmlu"
    committed = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    assert committed == expected_files(), "run `python -m rephraser.tasks.mmlu.generate`"


def test_plain_lm_eval_lists_the_tasks(tmp_path, data_dir):
    result = lm_eval("ls", "tasks", cwd=tmp_path, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("rephrased_gsm8k", "original_gsm8k", "rephrased_mmlu", "rephrased_mmlu_zh", "original_mmlu",
                 "original_humaneval", "rephrased_humaneval", "gsm8k_contamination"):
        assert f"|{name} " in result.stdout, name
    off = lm_eval("ls", "tasks", cwd=tmp_path, env={"REPHRASER_NO_LM_EVAL_HOOK": "1"})
    assert "rephrased_gsm8k" not in off.stdout  # the opt-out works


def test_plain_lm_eval_runs_every_family_with_hf(tmp_path, data_dir, tiny_llama):
    tasks = "rephrased_gsm8k,original_gsm8k,rephrased_mmlu,rephrased_mmlu_zh,original_mmlu_sociology,original_humaneval,rephrased_humaneval"
    result = lm_eval("run", "--model", "hf", "--model_args", f"pretrained={tiny_llama},dtype=float32", "--device", "cpu",
                     "--tasks", tasks, "--limit", "2", "--confirm_run_unsafe_code", "--output_path", tmp_path / "out",
                     cwd=tmp_path, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert "exact_match,strict-match" in results["rephrased_gsm8k"] and "acc,none" in results["rephrased_mmlu"]
    assert results["original_humaneval"]["pass@1,none"] == 0.0  # a random model writes no working code


def test_humaneval_refuses_without_consent(tmp_path, data_dir, tiny_llama):
    result = lm_eval("run", "--model", "hf", "--model_args", f"pretrained={tiny_llama}", "--device", "cpu",
                     "--tasks", "original_humaneval", "--limit", "1", cwd=tmp_path, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert result.returncode != 0 and "confirm_run_unsafe_code" in (result.stdout + result.stderr)


class ReplayLM:
    """An lm-eval LM that answers with each document's gold answer (or nothing)."""

    def __new__(cls, empty=False):
        from lm_eval.api.model import LM

        class _Replay(LM):
            def generate_until(self, requests):
                return ["" if empty else d["gold"] if "entry_point" in d else f" \n#### {d['gold']}"
                        for d in (r.doc for r in requests)]

            def loglikelihood(self, requests):
                return [(0.0 if r.arguments[1].strip() == "ABCD"[r.doc["answer"]] else -9.0, True) for r in requests]

            def loglikelihood_rolling(self, requests):
                raise NotImplementedError

        return _Replay()


def evaluate(tm, model, tasks, limit=None):
    from lm_eval import simple_evaluate

    out = simple_evaluate(model=model, tasks=tasks, task_manager=tm, limit=limit, confirm_run_unsafe_code=True)
    return out["results"]


def test_gold_answers_score_100_percent(tm):
    tasks = ["original_gsm8k", "rephrased_gsm8k", "original_mmlu", "rephrased_mmlu", "rephrased_mmlu_zh",
             "original_humaneval", "rephrased_humaneval"]
    results = evaluate(tm, ReplayLM(), tasks)
    for name in ("original_gsm8k", "rephrased_gsm8k"):
        assert results[name]["exact_match,strict-match"] == 1.0 and results[name]["exact_match,flexible-extract"] == 1.0
    for name in ("original_mmlu", "rephrased_mmlu", "rephrased_mmlu_zh"):
        assert results[name]["acc,none"] == 1.0, name
    assert results["original_humaneval"]["pass@1,none"] == 1.0  # 164/164 through the sandbox
    assert round(results["rephrased_humaneval"]["pass@1,none"] * 145) == REPHRASED_HUMANEVAL_GOLD_PASSES


def test_empty_answers_score_zero(tm):
    results = evaluate(tm, ReplayLM(empty=True), ["rephrased_gsm8k", "original_humaneval", "rephrased_humaneval"], limit=25)
    assert results["rephrased_gsm8k"]["exact_match,strict-match"] == 0.0
    assert results["rephrased_gsm8k"]["exact_match,flexible-extract"] == 0.0
    assert results["original_humaneval"]["pass@1,none"] == 0.0 and results["rephrased_humaneval"]["pass@1,none"] == 0.0


@pytest.mark.parametrize("response, strict, flexible", [
    (" \n#### 18", "18", "18"),
    (" She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "18", "18"),
    (" \n#### 1,234", "1,234", "1,234"),
    (" \n#### -5", "-5", "-5"),
    (" The answer is 42.", "[invalid]", "42."),
    ("", "[invalid]", "[invalid]"),
    (" \n#### $18", "[invalid]", "$18"),
])
def test_gsm8k_answer_extraction(tm, response, strict, flexible):
    task = tm.load(["rephrased_gsm8k"])["tasks"]["rephrased_gsm8k"]
    extracted = {}
    for ensemble in task._filters:
        resps = [[response]]
        for make_filter in ensemble.filters:  # the pipeline lm-eval runs (FilterEnsemble.apply)
            resps = list(make_filter().apply(resps, [{}]))
        extracted[ensemble.name] = resps[0] if isinstance(resps[0], str) else resps[0][0]
    assert extracted == {"strict-match": strict, "flexible-extract": flexible}
    gold_match = task.process_results({"gold": "1234" if "1,234" in response else "18"}, [extracted["strict-match"]])
    assert gold_match["exact_match"] == float(strict in ("18", "1,234"))


def memorise(model_dir, rows, work):
    """The pipeline a researcher runs: rephraser tokenize, then rephraser.train (loss on every token)."""
    from rephraser.data.tokenize import TokenizeConfig, tokenize_file

    (work / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TokenizeConfig(model=str(model_dir), input=str(work / "rows.jsonl"), layout="ragged")
    tokenize_file(cfg, log=lambda *_: None)
    done = subprocess.run([sys.executable, "-m", "rephraser.train", "--model", str(model_dir), "--data", str(cfg.out_path()),
                           "--output-dir", str(work / "run"), "--max-steps", "120", "--lr", "3e-3", "--warmup-ratio", "0",
                           "--micro-batch-rows", "4", "--max-seq-len", "256"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "run" / "model"


def test_memorised_items_score_exact_match_1_through_lm_eval(tmp_path, data_dir, tiny_llama):
    rows = [json.loads(line) for line in open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")][:4]
    model = memorise(tiny_llama, rows, tmp_path)
    result = lm_eval("run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32", "--device", "cpu",
                     "--tasks", "rephrased_gsm8k,original_gsm8k", "--limit", "4", "--output_path", tmp_path / "out",
                     cwd=tmp_path, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert results["rephrased_gsm8k"]["exact_match,strict-match"] == 1.0
    assert "exact_match,strict-match" in results["original_gsm8k"]  # the originals, for comparison


def test_explicit_registration_and_five_shot_mmlu(data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    import rephraser
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model

    rephraser.register_lm_eval()
    assert get_model("rephraser-hf").__name__ == "RephraserHFLM" and get_model("hf").__name__ == "HFLM"
    out = simple_evaluate(model=ReplayLM(), tasks=["rephrased_mmlu_sociology"], num_fewshot=5, limit=3)
    assert out["results"]["rephrased_mmlu_sociology"]["acc,none"] == 1.0
    assert out["configs"]["rephrased_mmlu_sociology"]["num_fewshot"] == 5


def test_startup_hook_costs_under_2_ms():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "REPHRASER_NO_LM_EVAL_HOOK"})
    cumulative = [int(line.split("|")[1]) for line in done.stderr.splitlines() if line.rstrip().endswith("rephraser_lm_eval_hook")]
    assert cumulative, "the .pth hook did not run at startup"
    assert cumulative[0] < 2000  # microseconds
    modules = [line.split("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:") and "|" in line]
    assert not [m for m in modules if m.split(".")[0] in ("lm_eval", "rephraser", "torch")]  # nothing heavy until lm_eval loads
