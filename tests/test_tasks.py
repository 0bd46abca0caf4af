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
    "original_gsm8k": 1319,
    "rephrased_gsm8k": 1315,  # 4 rephrased questions are empty (309, 669, 727, 948)
    "original_humaneval": 164,
    "rephrased_humaneval": 145,  # 17 empty placeholders, 2 not valid Python
    # 4 / 12 / 4 empty placeholders, and 16 / 13 / 15 questions that give their answer away
    # (rephraser.benchmarks.mmlu.leaks)
    "rephrased_mmlu_abstract_algebra": 80,
    "rephrased_mmlu_high_school_us_history": 179,
    "rephrased_mmlu_sociology": 182,
    "rephrased_mmlu_zh_abstract_algebra": 100,
    "rephrased_mmlu_zh_high_school_us_history": 202,
    "rephrased_mmlu_zh_sociology": 201,
    "original_mmlu_abstract_algebra": 100,
    "original_mmlu_professional_law": 1534,
}
# rephrased HumanEval: the LMSYS rephrase changed the behaviour of 11 of 145 solutions (the original tests fail
# on them).
REPHRASED_HUMANEVAL_GOLD_PASSES = 134


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
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})},
    )


@pytest.mark.slow
def test_every_yaml_is_indexed_and_every_task_loads(tm):
    names = yaml_names()
    assert len(names) == 72 and {n for n, kind in names.items() if kind == "group"} >= {
        "original_mmlu",
        "rephrased_mmlu",
        "rephrased_mmlu_zh",
        "gsm8k_contamination",
        "humaneval_contamination",
    }
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
    from rephraser.benchmarks.mmlu.subjects import SUBJECTS

    return SUBJECTS


def test_generated_mmlu_files_are_current():
    from rephraser.benchmarks.mmlu.generate import expected_files

    folder = TASKS_DIR / "mmlu"
    committed = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    assert committed == expected_files(), "run `python -m rephraser.benchmarks.mmlu.generate`"


@pytest.mark.slow
def test_plain_lm_eval_lists_the_tasks(tmp_path, data_dir):
    result = lm_eval("ls", "tasks", cwd=tmp_path, env={"REPHRASER_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "rephrased_gsm8k",
        "original_gsm8k",
        "rephrased_mmlu",
        "rephrased_mmlu_zh",
        "original_mmlu",
        "original_humaneval",
        "rephrased_humaneval",
        "gsm8k_contamination",
    ):
        assert f"|{name} " in result.stdout, name
    off = subprocess.run(
        [sys.executable, "-c", "from lm_eval.tasks import TaskManager; print(TaskManager().all_tasks)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "REPHRASER_NO_LM_EVAL_HOOK": "1"},
    )
    assert off.returncode == 0 and "gsm8k" in off.stdout and "rephrased_gsm8k" not in off.stdout  # the opt-out works


@pytest.mark.slow
def test_plain_lm_eval_runs_every_family_with_hf(tmp_path, data_dir, tiny_llama):
    tasks = ",".join(
        [
            "rephrased_gsm8k",
            "original_gsm8k",
            "rephrased_mmlu",
            "rephrased_mmlu_zh",
            "original_mmlu_sociology",
            "original_humaneval",
            "rephrased_humaneval",
        ]
    )
    result = lm_eval(
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_llama},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        tasks,
        "--limit",
        "2",
        "--confirm_run_unsafe_code",
        "--output_path",
        tmp_path / "out",
        cwd=tmp_path,
        env={"REPHRASER_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert "exact_match,strict-match" in results["rephrased_gsm8k"] and "acc,none" in results["rephrased_mmlu"]
    assert results["original_humaneval"]["pass@1,none"] == 0.0  # a random model writes no working code


@pytest.mark.slow
def test_humaneval_refuses_without_consent(tmp_path, data_dir, tiny_llama):
    result = lm_eval(
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_llama}",
        "--device",
        "cpu",
        "--tasks",
        "original_humaneval",
        "--limit",
        "1",
        cwd=tmp_path,
        env={"REPHRASER_DATA_DIR": str(data_dir)},
    )
    assert result.returncode != 0 and "confirm_run_unsafe_code" in (result.stdout + result.stderr)


class ReplayLM:
    """An lm-eval LM that answers with each document's gold answer (or nothing)."""

    def __new__(cls, empty=False):
        from lm_eval.api.model import LM

        class _Replay(LM):
            def generate_until(self, requests):
                return [
                    "" if empty else d["gold"] if "entry_point" in d else f" \n#### {d['gold']}"
                    for d in (r.doc for r in requests)
                ]

            def loglikelihood(self, requests):
                return [(0.0 if r.arguments[1].strip() == "ABCD"[r.doc["answer"]] else -9.0, True) for r in requests]

            def loglikelihood_rolling(self, requests):
                raise NotImplementedError

        return _Replay()


def evaluate(tm, model, tasks, limit=None):
    from lm_eval import simple_evaluate

    out = simple_evaluate(model=model, tasks=tasks, task_manager=tm, limit=limit, confirm_run_unsafe_code=True)
    return out["results"]


@pytest.mark.slow
def test_gold_answers_score_100_percent(tm):
    tasks = [
        "original_gsm8k",
        "rephrased_gsm8k",
        "original_mmlu",
        "rephrased_mmlu",
        "rephrased_mmlu_zh",
        "original_humaneval",
        "rephrased_humaneval",
    ]
    results = evaluate(tm, ReplayLM(), tasks)
    for name in ("original_gsm8k", "rephrased_gsm8k"):
        assert results[name]["exact_match,strict-match"] == 1.0 and results[name]["exact_match,flexible-extract"] == 1.0
    for name in ("original_mmlu", "rephrased_mmlu", "rephrased_mmlu_zh"):
        assert results[name]["acc,none"] == 1.0, name
    assert results["original_humaneval"]["pass@1,none"] == 1.0  # 164/164 through the sandbox
    assert round(results["rephrased_humaneval"]["pass@1,none"] * 145) == REPHRASED_HUMANEVAL_GOLD_PASSES


@pytest.mark.slow
def test_empty_answers_score_zero(tm):
    results = evaluate(
        tm, ReplayLM(empty=True), ["rephrased_gsm8k", "original_humaneval", "rephrased_humaneval"], limit=25
    )
    assert results["rephrased_gsm8k"]["exact_match,strict-match"] == 0.0
    assert results["rephrased_gsm8k"]["exact_match,flexible-extract"] == 0.0
    assert results["original_humaneval"]["pass@1,none"] == 0.0 and results["rephrased_humaneval"]["pass@1,none"] == 0.0


@pytest.mark.parametrize(
    "response, strict, flexible",
    [
        (" \n#### 18", "18", "18"),
        (" She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18", "18", "18"),
        (" \n#### 1,234", "1,234", "1,234"),
        (" \n#### -5", "-5", "-5"),
        (" The answer is 42.", "[invalid]", "42."),
        ("", "[invalid]", "[invalid]"),
        (" \n#### $18", "[invalid]", "$18"),
    ],
)
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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rephraser.train",
            "--model",
            str(model_dir),
            "--data",
            str(cfg.out_path()),
            "--output-dir",
            str(work / "run"),
            "--max-steps",
            "120",
            "--lr",
            "3e-3",
            "--warmup-ratio",
            "0",
            "--micro-batch-rows",
            "4",
            "--max-seq-len",
            "256",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "run" / "model"


@pytest.mark.slow
def test_memorised_items_score_exact_match_1_through_lm_eval(tmp_path, data_dir, tiny_llama):
    rows = [json.loads(line) for line in open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")][:4]
    model = memorise(tiny_llama, rows, tmp_path)
    result = lm_eval(
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "rephrased_gsm8k,original_gsm8k",
        "--limit",
        "4",
        "--output_path",
        tmp_path / "out",
        cwd=tmp_path,
        env={"REPHRASER_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert results["rephrased_gsm8k"]["exact_match,strict-match"] == 1.0
    assert "exact_match,strict-match" in results["original_gsm8k"]  # the originals, for comparison


@pytest.mark.slow
def test_explicit_registration_and_five_shot_mmlu(data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    from lm_eval import simple_evaluate
    from lm_eval.api.registry import get_model

    import rephraser

    rephraser.register_lm_eval()
    assert get_model("rephraser-hf").__name__ == "RephraserHFLM" and get_model("hf").__name__ == "HFLM"
    out = simple_evaluate(model=ReplayLM(), tasks=["rephrased_mmlu_sociology"], num_fewshot=5, limit=3)
    assert out["results"]["rephrased_mmlu_sociology"]["acc,none"] == 1.0
    assert out["configs"]["rephrased_mmlu_sociology"]["num_fewshot"] == 5


@pytest.mark.slow
def test_startup_hook_imports_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "REPHRASER_NO_LM_EVAL_HOOK"},
    )
    cumulative = [
        int(line.split("|")[1]) for line in done.stderr.splitlines() if line.rstrip().endswith("rephraser_lm_eval_hook")
    ]
    assert cumulative, "the .pth hook did not run at startup"
    # No absolute time bound (a loaded machine makes any threshold flaky): what keeps it cheap is that it imports
    # nothing but the standard library until lm_eval itself is imported.
    modules = [
        line.split("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert not [
        m for m in modules if m.split(".")[0] in ("lm_eval", "rephraser", "torch")
    ]  # nothing heavy until lm_eval loads


# ---------------------------------------------------------------- fidelity: few-shot, parsing, leaks, empty items

FEWSHOT_TASKS = [
    "original_gsm8k",
    "rephrased_gsm8k",
    "original_mmlu_sociology",
    "rephrased_mmlu_sociology",
    "rephrased_mmlu_zh_sociology",
    "original_mmlu_abstract_algebra",
    "rephrased_mmlu_zh_abstract_algebra",
]


def fewshot_prompt(task, doc, shots=5):
    task.set_fewshot_seed(seed=1234)  # lm-eval's default fewshot_random_seed
    return task.fewshot_context(doc, num_fewshot=shots)


def test_fewshot_examples_never_come_from_the_test_split(tm):
    tasks = tm.load(FEWSHOT_TASKS)["tasks"]
    for name, task in tasks.items():
        assert task.config.fewshot_split and task.config.fewshot_split != task.config.test_split, name
        test_questions = {d["question"].strip() for d in task.test_docs()}
        examples = list(task.fewshot_docs())
        assert examples and not [d for d in examples if d["question"].strip() in test_questions], name
    prompt = fewshot_prompt(tasks["rephrased_gsm8k"], tasks["rephrased_gsm8k"].test_docs()[0])
    assert prompt.count("#### ") == 5 and prompt.count("Question:") == 6  # worked answers, as lm-eval's gsm8k


@pytest.mark.slow
def test_gsm8k_fewshot_prompts_equal_lm_evals_own_gsm8k(tmp_path, tm, data_dir):
    """lm-eval's built-in gsm8k, pointed at the same local files, builds byte-identical 5-shot prompts."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    upstream = Path(lm_eval.tasks.__file__).parent / "gsm8k" / "gsm8k.yaml"
    (tmp_path / "gsm8k_local.yaml").write_text(
        f"include: {upstream}\ntask: gsm8k_local\ndataset_path: "
        "json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n"
        f"    train: {data_dir / 'gsm8k' / 'train.jsonl'}\n    test: {data_dir / 'gsm8k' / 'test.jsonl'}\n"
    )
    reference = TaskManager(include_path=str(tmp_path)).load(["gsm8k_local"])["tasks"]["gsm8k_local"]
    ours = tm.load(["original_gsm8k"])["tasks"]["original_gsm8k"]
    for i in (0, 1, 7, 500, 1318):
        assert fewshot_prompt(ours, ours.test_docs()[i]) == fewshot_prompt(reference, reference.test_docs()[i]), i


def test_chinese_mmlu_fewshot_examples_carry_their_options(tm):
    task = tm.load(["rephrased_mmlu_zh_sociology"])["tasks"]["rephrased_mmlu_zh_sociology"]
    prompt = fewshot_prompt(task, task.test_docs()[0])
    examples = prompt.split("\n\n")[1:-1]  # after the description, before the test item
    assert len(examples) == 5
    for example in examples:
        assert all(f"\n{letter}. " in example for letter in "ABCD") and re.search(r"答案：[ABCD]$", example), example


def test_humaneval_refuses_fewshot(tm):
    from rephraser.errors import RephraserError

    task = tm.load(["original_humaneval"])["tasks"]["original_humaneval"]
    assert fewshot_prompt(task, task.test_docs()[0], shots=0).startswith("from typing import List")
    with pytest.raises(RephraserError, match="only a test split: few-shot examples would be other test items"):
        fewshot_prompt(task, task.test_docs()[0], shots=1)


def test_rephrased_humaneval_entry_points_aliases_and_docstrings(tm):
    docs = {d["task_id"]: d for d in tm.load(["rephrased_humaneval"])["tasks"]["rephrased_humaneval"].test_docs()}
    assert docs["HumanEval/53"]["entry_point"] == "sum_values"  # not the added helper `divide`
    assert "sort_third = arrange_third" in docs["HumanEval/33"]["test"]  # the original test calls sort_third by name
    assert "poly = evaluate_poly" in docs["HumanEval/32"]["test"]
    he115 = docs["HumanEval/115"]
    assert (
        "import math" in he115["prompt"] and he115["prompt"].rstrip().endswith('"""') and "Sample 1" in he115["prompt"]
    )
    assert "Sample 1" not in he115["gold"] and he115["gold"].lstrip().startswith("#")
    assert docs["HumanEval/127"]["entry_point"] == "overlap"  # after its own helper check_prime


@pytest.mark.slow
def test_gold_replay_on_rephrased_humaneval_fails_only_the_changed_behaviours(tm):
    from rephraser.benchmarks.humaneval.scoring import check_program
    from rephraser.sandbox import Sandbox, SandboxConfig, raise_on_errors

    docs = tm.load(["rephrased_humaneval"])["tasks"]["rephrased_humaneval"].test_docs()
    with Sandbox(SandboxConfig(workers=2), consent=True) as box:
        results = box.run([check_program(d, d["gold"], d["entry_point"]) for d in docs])
    raise_on_errors(results)
    failing = sorted(int(r.task_id.split("/")[1]) for r in results if not r.passed)
    # The LMSYS rephrase changed these programs' behaviour (documented in rephraser/tasks/README.md).
    assert failing == [1, 5, 6, 56, 75, 79, 99, 113, 125, 141, 145]


def test_leaking_mmlu_items_are_excluded_by_default_and_counted(tm, data_dir, caplog):
    import csv
    import logging

    from rephraser.benchmarks.mmlu.leaks import leak_reason

    announcing = {"abstract_algebra": 15, "high_school_us_history": 12, "sociology": 11}  # the count: 38
    total_flagged = 0
    for subject, phrases in announcing.items():
        rephrased = [
            json.loads(line)["text"]
            for line in open(
                data_dir / "lmsys_rephrase" / "rephrase" / f"{subject}_test_rephrase_english_filtered_question.jsonl"
            )
        ]
        original = list(csv.reader(open(data_dir / "mmlu" / "test" / f"{subject}_test.csv")))
        reasons = [
            leak_reason(t, o[1:5], "ABCD".index(o[5]), o[0]) if t.strip() else None for t, o in zip(rephrased, original)
        ]
        assert sum(bool(r) and r.startswith("announces") for r in reasons) == phrases
        flagged = sum(map(bool, reasons))
        empty = sum(not t.strip() for t in rephrased)
        task = f"rephrased_mmlu_{subject}"
        logging.getLogger("rephraser").propagate = True
        with caplog.at_level(logging.WARNING, logger="rephraser"):
            loaded = tm.load([task])["tasks"][task]
        assert len(loaded.test_docs()) == len(original) - empty - flagged
        assert (
            f"{task}: {flagged} of {len(original)} records skipped: the rephrased question gives its answer away"
            in caplog.text
        )
        total_flagged += flagged
    assert total_flagged == 44


@pytest.mark.slow
def test_leaking_items_stay_reachable_through_metadata(data_dir, monkeypatch):
    from rephraser.tasks import task_manager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    tm = task_manager(metadata={"include_leaking_items": True})
    docs = tm.load(["rephrased_mmlu_sociology"])["tasks"]["rephrased_mmlu_sociology"].test_docs()
    assert len(docs) == 197


def test_no_empty_question_reaches_rephrased_gsm8k(tm):
    docs = tm.load(["rephrased_gsm8k"])["tasks"]["rephrased_gsm8k"].test_docs()
    assert all(d["question"].strip() for d in docs)
    assert {309, 669, 727, 948}.isdisjoint(d["index"] for d in docs) and len(docs) == 1315


@pytest.mark.slow
def test_cache_requests_serves_the_file_named_in_metadata(tmp_path, data_dir, monkeypatch):
    """lm-eval keys cached requests by task name only; ours add the data's fingerprint, so swapping the
    rephrased file through --metadata never reuses the previous file's prompts."""
    import lm_eval.caching.cache
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM

    from rephraser.tasks import task_manager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    monkeypatch.setattr(lm_eval.caching.cache, "PATH", str(tmp_path / "cache"))
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl").read_text().splitlines(keepends=True)
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(lines[:3]).replace("Question: ", "Question: MINE ") + "".join(lines[3:]))
    seen = []

    class Recorder(LM):
        def generate_until(self, requests):
            seen.append([r.args[0] for r in requests])
            return [""] * len(requests)

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    for metadata in ({}, {"rephrased_gsm8k_path": str(mine)}):
        simple_evaluate(
            model=Recorder(),
            tasks=["rephrased_gsm8k"],
            limit=3,
            cache_requests=True,
            task_manager=task_manager(metadata=metadata),
        )
    assert list((tmp_path / "cache").iterdir())  # the cache was used
    assert not any("MINE" in c for c in seen[0]) and all("MINE" in c for c in seen[1])


@pytest.mark.slow
def test_a_users_include_path_wins_over_ours(tmp_path, data_dir, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    (tmp_path / "mine.yaml").write_text(
        "task: rephrased_gsm8k\ndataset_path: json\ndataset_kwargs:\n  "
        f"data_files:\n    test: {data_dir / 'gsm8k' / 'test.jsonl'}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: "
        "'MY OWN {{question}}'\ndoc_to_target: '{{answer}}'\n"
    )
    import rephraser

    rephraser.register_lm_eval()  # the hook's patch, as in every lm_eval run
    task = TaskManager(include_path=str(tmp_path)).load(["rephrased_gsm8k"])["tasks"]["rephrased_gsm8k"]
    assert task.doc_to_text(task.test_docs()[0]).startswith("MY OWN ")


@pytest.mark.slow
def test_log_samples_rows_carry_the_original_index(tmp_path, data_dir, tiny_llama):
    result = lm_eval(
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_llama},dtype=float32",
        "--device",
        "cpu",
        "--tasks",
        "rephrased_gsm8k,rephrased_mmlu_sociology",
        "--log_samples",
        "--output_path",
        tmp_path / "out",
        "--samples",
        json.dumps({"rephrased_gsm8k": [308, 309, 310], "rephrased_mmlu_sociology": [0, 1]}),
        cwd=tmp_path,
        env={"REPHRASER_DATA_DIR": str(data_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for f in (tmp_path / "out").rglob("samples_rephrased_gsm8k_*.jsonl") for line in open(f)]
    # positions 308..310 of the task's docs: the empty item 309 was skipped, so they are originals 308, 310, 311
    assert sorted({r["doc"]["index"] for r in rows}) == [308, 310, 311]  # one row per doc and filter
    gold = [json.loads(line)["answer"] for line in open(data_dir / "gsm8k" / "test.jsonl")]
    assert all(r["doc"]["answer"] == gold[r["doc"]["index"]] for r in rows)
    mmlu = [
        json.loads(line)
        for f in (tmp_path / "out").rglob("samples_rephrased_mmlu_sociology_*.jsonl")
        for line in open(f)
    ]
    assert mmlu and all("index" in r["doc"] for r in mmlu)
