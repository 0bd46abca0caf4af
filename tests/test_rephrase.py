"""`rephraser rephrase` end to end, offline: a loopback OpenAI-compatible server, the code-ast rewriter over the
whole of HumanEval, twins of lm-eval tasks, resume after kill -9, and bad input."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, spaced, within

KEY = "test-key-5ecret"


def rephraser(*args, env=None, cwd=None, timeout=600):
    exe = Path(sys.executable).with_name("rephraser")
    return subprocess.run(
        [str(exe), "rephrase", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})},
    )


def gsm8k_questions(data_dir, n):
    return [json.loads(line)["question"] for _, line in zip(range(n), open(data_dir / "gsm8k" / "test.jsonl"))]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def everything_written(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_openai_backend_retries_overlap_loop_and_checks(tmp_path, data_dir):
    questions = gsm8k_questions(data_dir, 6)
    index = {q.strip(): i for i, q in enumerate(questions)}

    def reply(question, attempt, transient):
        i = index[question]
        first = attempt == 1
        if i == 0:
            return question if first else spaced(question)  # a near-copy first, then fine
        if i == 1 and first and transient:
            return ("status", 429, 1)  # rate limited, Retry-After: 1
        if i == 2 and first and transient:
            return ("status", 500, None)
        if i == 3 and first and transient:
            return ("hang", 3)  # past the 1 s timeout
        if i == 4 and first:
            return re.sub(r"\d+", "several", spaced(question), count=1)  # a number dropped
        if i == 5:
            return question  # never acceptable
        return spaced(question)

    server = FakeOpenAI(reply, key=KEY).start()
    out = tmp_path / "out"
    try:
        done = rephraser(
            "--benchmark",
            "gsm8k",
            "--backend",
            "openai",
            "--model",
            "fake",
            "--api-base",
            server.url,
            "--limit",
            6,
            "--max-attempts",
            3,
            "--timeout-s",
            1,
            "--concurrency",
            3,
            "--out",
            out,
            env={"OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir)},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_jsonl(out / "records.jsonl")
    assert [r["index"] for r in records] == list(range(6))
    assert [r["status"] for r in records] == ["accepted"] * 5 + ["failed"]
    assert records[0]["attempts"] == 2 and records[0]["history"][0]["outcome"] == "overlap"
    assert records[4]["history"][0]["outcome"] == "check" and "dropped the number" in records[4]["history"][0]["detail"]
    assert records[5]["reason"] == "overlap" and records[5]["attempts"] == 3 and records[5]["rephrased"] == ""
    for r in records[:5]:
        assert r["shared_words"] < 10 and r["rephrased"] == spaced(questions[r["index"]])
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"items": 6, "accepted": 5, "failed": {"overlap": 1}}
    assert {"http_429", "http_500", "timeout"} <= set(report["cost"]["retries_by_reason"])
    assert report["cost"]["prompt_tokens"] > 0 and report["cost"]["completion_tokens"] > 0
    retried = [t for t, q, a, status in server.log if index.get(q) == 1]
    assert retried[1] - retried[0] >= 1.0  # Retry-After was honoured
    train = read_jsonl(out / "train.jsonl")
    assert len(train) == 6 and train[5] == {"text": ""}
    gold = [
        json.loads(line)["answer"].split("####")[-1].strip()
        for _, line in zip(range(6), open(data_dir / "gsm8k" / "test.jsonl"))
    ]
    assert train[0]["text"] == f"Question: {spaced(questions[0])}\nAnswer: \n#### {gold[0]}"
    assert (out / "task" / "rephrase_gsm8k.jsonl").read_text().startswith((out / "train.jsonl").read_text())
    assert KEY not in everything_written(out) and KEY not in done.stdout + done.stderr


@pytest.mark.slow
def test_rephrased_gsm8k_file_feeds_the_existing_task(tmp_path, data_dir, monkeypatch):
    """The preset's task file is what `rephrased_gsm8k` reads through --metadata, index-aligned and gold-checked."""
    questions = gsm8k_questions(data_dir, 1319)
    server = FakeOpenAI(lambda q, a, t: spaced(q), key=KEY).start()
    out = tmp_path / "out"
    try:
        done = rephraser(
            "--benchmark",
            "gsm8k",
            "--backend",
            "openai",
            "--model",
            "fake",
            "--api-base",
            server.url,
            "--limit",
            12,
            "--concurrency",
            4,
            "--out",
            out,
            env={"OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir)},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    full = out / "task" / "rephrase_gsm8k.jsonl"
    assert len(full.read_text().splitlines()) == 1319  # aligned with the whole test set: placeholders beyond --limit
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    from rephraser.benchmarks import get_benchmark

    docs = get_benchmark("gsm8k", rephrased_gsm8k_path=str(full)).docs("rephrased")
    assert [d["index"] for d in docs] == list(range(12)) and docs[3]["question"] == spaced(questions[3])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OPENAI = ["--backend", "openai", "--model", "m"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, key, message",
    [
        (["--benchmark", "gsm8k", *OPENAI, "--api-base", "http://127.0.0.1:{port}/v1", "--limit", "3"], KEY,
         "cannot reach http://127.0.0.1:{port}/v1"),
        (["--benchmark", "gsm8k", *OPENAI, "--api-base", "http://127.0.0.1:9/v1"], "", "OPENAI_API_KEY is not set"),
        (["--benchmark", "gsm9k", "--backend", "code-ast"], KEY, "benchmark: 'gsm9k' is not a benchmark"),
        (["--task", "no_such_task", *OPENAI, "--api-base", "http://x/v1"], KEY, "lm-eval knows no task 'no_such_task'"),
        (["--benchmark", "humaneval", "--backend", "code-ast"], KEY, "--confirm-run-unsafe-code"),
    ],
    ids=["dead endpoint", "no key", "unknown benchmark", "unknown task", "no consent"],
)  # fmt: skip
def test_a_run_that_cannot_work_fails_at_once_with_one_line_and_leaves_nothing(tmp_path, data_dir, args, key, message):
    port = closed_port()
    start = time.monotonic()
    done = rephraser(*[a.format(port=port) for a in args], "--out", tmp_path / "out",
                     env={"OPENAI_API_KEY": key, "REPHRASER_DATA_DIR": str(data_dir)})  # fmt: skip
    assert done.returncode == 1 and message.format(port=port) in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) <= 3 and "Traceback" not in done.stderr
    assert time.monotonic() - start < 60 and not (tmp_path / "out").exists()


def local_task(folder: Path, rows: list[dict], name="qa_local") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'qa.jsonl'}\n"
        "output_type: generate_until\ntest_split: test\ndoc_to_text: "
        '"Q: {{question}}\\nA:"\ndoc_to_target: "{{answer}}"\n'
        'generation_kwargs:\n  until: ["\\n"]\nmetric_list:\n  - metric: exact_match\n'
    )
    return folder


@pytest.mark.slow
def test_task_twin_of_a_local_yaml_task(tmp_path, data_dir):
    rows = [{"question": q, "answer": str(i), "topic": f"t{i % 3}"} for i, q in enumerate(gsm8k_questions(data_dir, 8))]
    tasks = local_task(tmp_path / "tasks", rows)
    server = FakeOpenAI(lambda q, a, t: q if q.startswith(rows[2]["question"][:20]) else spaced(q), key=KEY).start()
    out = tmp_path / "out"
    try:
        done = rephraser(
            "--task",
            "qa_local",
            "--include-path",
            tasks,
            "--backend",
            "openai",
            "--model",
            "m",
            "--api-base",
            server.url,
            "--max-attempts",
            2,
            "--out",
            out,
            env={"OPENAI_API_KEY": KEY},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"items": 8, "accepted": 7, "failed": {"overlap": 1}}
    train = read_jsonl(out / "train.jsonl")
    assert train[0]["text"] == f"Q: {spaced(rows[0]['question'])}\nA: 0" and train[2]["text"] == ""
    from rephraser.tasks import task_manager

    twin = task_manager(include_path=[str(tasks), str(out / "task")]).load(["rephrased_qa_local", "qa_local"])["tasks"]
    original, rephrased = list(twin["qa_local"].test_docs()), list(twin["rephrased_qa_local"].test_docs())
    assert len(rephrased) == len(original) - 1
    kept = [d for k, d in enumerate(original) if k != 2]
    for a, b in zip(kept, rephrased):
        assert {k: v for k, v in a.items() if k != "question"} == {k: v for k, v in b.items() if k != "question"}
        assert b["question"] == spaced(a["question"])
        assert twin["rephrased_qa_local"].doc_to_target(b) == twin["qa_local"].doc_to_target(a)
        assert twin["rephrased_qa_local"].doc_to_text(b) == f"Q: {b['question']}\nA:"
    exe = Path(sys.executable).with_name("lm_eval")
    listed = subprocess.run(
        [str(exe), "ls", "tasks", "--include_path", str(out / "task")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1"},
    )
    assert "|rephrased_qa_local " in listed.stdout


@pytest.mark.slow
def test_task_gsm8k_rephrases_the_same_field_as_the_preset(tmp_path, data_dir, monkeypatch):
    import lm_eval.tasks

    from rephraser.benchmarks import get_benchmark
    from rephraser.benchmarks.task import TaskBenchmark

    upstream = Path(lm_eval.tasks.__file__).parent / "gsm8k" / "gsm8k.yaml"
    (tmp_path / "gsm8k.yaml").write_text(  # lm-eval's own gsm8k, pointed at the local mirror
        f"include: {upstream}\ntask: gsm8k\ndataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n"
        f"    train: {data_dir / 'gsm8k' / 'train.jsonl'}\n    test: {data_dir / 'gsm8k' / 'test.jsonl'}\n"
    )
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    task = TaskBenchmark("gsm8k", include_path=str(tmp_path))
    preset = get_benchmark("gsm8k")
    assert task.field == "question"
    assert [i.text for i in task.items()] == [i.text for i in preset.items()]
    doc = task.items()[0]
    assert task.rephrased_training_text(doc, "REPHRASED") == f"Question: REPHRASED\nAnswer: {doc.doc['answer']}"


@pytest.mark.slow
def test_an_unknown_field_or_empty_task_is_refused(tmp_path, data_dir):
    rows = [{"question": "q one two", "answer": "1", "topic": "t"}]
    local_task(tmp_path / "tasks", rows)
    bad_field = rephraser(
        "--task",
        "qa_local",
        "--include-path",
        tmp_path / "tasks",
        "--field",
        "nope",
        "--backend",
        "openai",
        "--model",
        "m",
        "--api-base",
        "http://x/v1",
        "--out",
        tmp_path / "o",
        env={"OPENAI_API_KEY": KEY},
    )
    assert bad_field.returncode == 1 and "field: 'nope' is not a text field of qa_local" in bad_field.stderr
    local_task(tmp_path / "empty", [], name="qa_empty")
    empty = rephraser(
        "--task",
        "qa_empty",
        "--include-path",
        tmp_path / "empty",
        "--backend",
        "openai",
        "--model",
        "m",
        "--api-base",
        "http://x/v1",
        "--out",
        tmp_path / "o2",
        env={"OPENAI_API_KEY": KEY},
    )
    assert empty.returncode == 1 and "Traceback" not in empty.stderr and not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_kill_minus_9_then_rerun_equals_an_uninterrupted_run(tmp_path, data_dir):
    index = {q.strip(): i for i, q in enumerate(gsm8k_questions(data_dir, 40))}

    def reply(question, attempt, transient):  # item i is accepted at attempt 1 + i % 4: items finish round by round
        time.sleep(0.05)
        return spaced(question) if attempt > index[question] % 4 else question

    server = FakeOpenAI(reply, key=KEY).start()
    args = (
        "--benchmark",
        "gsm8k",
        "--backend",
        "openai",
        "--model",
        "m",
        "--api-base",
        server.url,
        "--limit",
        40,
        "--concurrency",
        2,
    )
    env = {**os.environ, "OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    try:
        straight = rephraser(*args, "--out", tmp_path / "a", env=env)
        assert straight.returncode == 0, straight.stderr[-2000:]
        out = tmp_path / "b"
        exe = Path(sys.executable).with_name("rephraser")
        proc = subprocess.Popen(
            [str(exe), "rephrase", *map(str, args), "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = out / "progress.jsonl"
            if progress.is_file() and progress.read_text().count("\n") >= 10:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        finished_before = {r["original"].strip() for r in read_jsonl(out / "progress.jsonl")}
        assert 8 <= len(finished_before) < 40 and not (out / "records.jsonl").exists()
        resumed = rephraser(*args, "--out", out, env=env)
        assert resumed.returncode == 0 and "resuming: " in resumed.stdout, resumed.stderr[-2000:]
    finally:
        server.stop()
    for name in ("records.jsonl", "train.jsonl", "task/rephrase_gsm8k.jsonl"):
        assert (out / name).read_text() == (tmp_path / "a" / name).read_text(), name
    asked_again = [q for t, q, a, s in server.log if t > killed_at and q in finished_before]
    assert not asked_again  # finished items are never requested again
    changed = rephraser(*args[:-2], "--concurrency", 2, "--max-attempts", 3, "--out", out, env=env)
    assert changed.returncode == 1 and "max_attempts: 5 there, 3 now" in changed.stderr


# --- the client, the loop and resume, against a misbehaving endpoint (issue 19). In-process unless marked slow. ---


def run_in_process(tmp_path, mirror, monkeypatch, reply, out="out", **settings):
    """`rephraser rephrase --benchmark gsm8k --backend openai` in this process, against a loopback server that
    answers with `reply`: (report, records by index, the server's log, the log lines)."""
    from rephraser.rephrase.config import RephraseConfig
    from rephraser.rephrase.run import rephrase

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(mirror))
    server = FakeOpenAI(reply, key=KEY).start()
    lines: list[str] = []
    cfg = RephraseConfig(
        **{"backend": "openai", "model": "m", "api_base": server.url, "benchmark": "gsm8k", "out": str(tmp_path / out)}
        | {"limit": 4, "max_attempts": 3, "concurrency": 4, "timeout_s": 5.0}
        | settings
    )
    try:
        report = rephrase(cfg, log=lines.append)
    finally:
        server.stop()
    return report, read_jsonl(tmp_path / out / "records.jsonl"), server.log, lines


def by_question(data_dir, n):
    return {q.strip(): i for i, q in enumerate(gsm8k_questions(data_dir, n))}


@pytest.mark.slow
def test_reply_cut_at_max_tokens_is_a_truncated_attempt_answered_with_feedback(tmp_path, data_dir, monkeypatch):
    index = by_question(data_dir, 4)

    def reply(question, attempt, transient):
        i = index[question]
        if i == 1:
            return ("length", spaced(question))  # cut every time: never whole
        return ("length", spaced(question)) if i == 0 and attempt == 1 else spaced(question)

    report, records, _, _ = run_in_process(tmp_path, data_dir, monkeypatch, reply, max_tokens=64)
    assert records[0]["status"] == "accepted" and records[0]["attempts"] == 2
    assert records[0]["history"][0] == {
        "attempt": 1,
        "outcome": "truncated",
        "detail": "the reply was cut at 64 tokens",
    }
    assert records[1]["status"] == "failed" and records[1]["reason"] == "truncated" and records[1]["rephrased"] == ""
    assert report["counts"]["failed"] == {"truncated": 1} and report["cost"]["truncated_replies"] == 1 + 3
    assert report["attempts"]["outcomes"] == {"accepted": 3, "truncated": 4}
    progress = read_jsonl(tmp_path / "out" / "progress.jsonl")
    assert len(progress) == 4 and not any(r["rephrased"] for r in progress if r["index"] == 1)


def test_truncation_feedback_continues_the_conversation(tmp_path, data_dir, monkeypatch):
    from rephraser.rephrase.config import RephraseConfig
    from rephraser.rephrase.run import rephrase

    seen: list[list[dict]] = []

    def respond(messages):
        seen.append(messages)
        question = messages[0]["content"].split("Problem:\n")[-1].strip()
        return ("length", "Half of a") if len(messages) == 1 else spaced(question)

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    server = FakeOpenAI(respond=respond, key=KEY).start()
    try:
        cfg = RephraseConfig(
            backend="openai",
            model="m",
            api_base=server.url,
            benchmark="gsm8k",
            limit=1,
            max_tokens=32,
            out=str(tmp_path),
        )
        rephrase(cfg, log=lambda *_: None)
    finally:
        server.stop()
    retry = seen[-1]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"] and retry[1]["content"] == "Half of a"
    assert "cut off at the length limit (32 tokens)" in retry[2]["content"]


def test_malformed_200_replies_are_failed_attempts_not_a_crash(tmp_path, data_dir, monkeypatch):
    index = by_question(data_dir, 4)
    bodies = {0: "<html><body>502 Bad Gateway</body></html>", 1: '{"choices": [{"index": 0}]}', 2: '{"choices": ['}

    def reply(question, attempt, transient):
        i = index[question]
        if i in bodies and (transient or i == 2):  # once (a failed request does not continue the chat); item 2: always
            return ("raw", 200, "text/html" if i == 0 else "application/json", bodies[i])
        return spaced(question)

    report, records, _, _ = run_in_process(tmp_path, data_dir, monkeypatch, reply)
    assert [r["status"] for r in records] == ["accepted", "accepted", "failed", "accepted"]
    assert records[0]["history"][0]["outcome"] == "api_error" and "not JSON" in records[0]["history"][0]["detail"]
    assert records[1]["history"][0]["detail"] == "malformed reply: a choice without a message"
    assert records[2]["reason"] == "api_error" and records[2]["attempts"] == 3
    assert report["cost"]["malformed_replies"] == 2 + 3 and report["cost"]["failed_requests"] == 5


def test_key_quoted_in_an_error_body_never_reaches_the_outputs(tmp_path, data_dir, monkeypatch, capfd):
    index = by_question(data_dir, 4)

    def reply(question, attempt, transient):
        return ("echo_auth", 400) if index[question] == 0 and transient else spaced(question)

    report, records, _, lines = run_in_process(tmp_path, data_dir, monkeypatch, reply)
    detail = records[0]["history"][0]["detail"]
    assert records[0]["history"][0]["outcome"] == "api_error" and "Authorization: Bearer [redacted]" in detail
    captured = capfd.readouterr()
    for text in (everything_written(tmp_path / "out"), captured.out + captured.err, "\n".join(lines)):
        assert KEY not in text and KEY[:8] not in text


def test_retry_after_past_the_cap_fails_the_request_and_is_counted(tmp_path, data_dir, monkeypatch):
    index = by_question(data_dir, 4)

    def reply(question, attempt, transient):
        return ("status", 429, 100000) if index[question] == 3 and transient else spaced(question)

    report, records, _, _ = within(60, lambda: run_in_process(tmp_path, data_dir, monkeypatch, reply))
    assert records[3]["status"] == "accepted" and records[3]["history"][0]["outcome"] == "api_error"
    assert "asked to wait 100000 s" in records[3]["history"][0]["detail"]
    assert report["cost"]["retry_after_over_cap"] == 1 and report["cost"]["failed_requests"] == 1


def test_resume_asks_again_for_items_that_failed_with_api_errors(tmp_path, data_dir, monkeypatch):
    """An outage is no answer about the item: a rerun asks again (and the record keeps what the item cost)."""
    index = by_question(data_dir, 4)
    outage = {"on": True}

    def reply(question, attempt, transient):
        if index[question] == 2:
            if outage["on"]:
                return question if attempt == 1 else ("status", 400, None)  # an overlap (tokens spent), then errors
            return spaced(question)
        return spaced(question)

    _, first, _, _ = run_in_process(tmp_path, data_dir, monkeypatch, reply)
    assert first[2]["status"] == "failed" and first[2]["reason"] == "api_error" and first[2]["prompt_tokens"] > 0
    outage["on"] = False
    report, again, log, lines = run_in_process(tmp_path, data_dir, monkeypatch, reply)
    assert any("3 of 4 items were finished by an earlier run; 1 that failed with API errors" in x for x in lines)
    assert {index[q] for _, q, _, _ in log} == {2}  # only the failed item is asked again
    assert again[2]["status"] == "accepted" and again[2]["rephrased"] == spaced(gsm8k_questions(data_dir, 3)[2])
    assert again[2]["prompt_tokens"] > first[2]["prompt_tokens"]
    assert [again[k] for k in (0, 1, 3)] == [first[k] for k in (0, 1, 3)]
    assert report["counts"] == {"items": 4, "accepted": 4, "failed": {}}


def test_resume_refuses_a_record_made_from_another_original(tmp_path, data_dir, monkeypatch):
    from rephraser.errors import InputError

    mirror = tmp_path / "mirror"
    (mirror / "gsm8k").mkdir(parents=True)
    rows = [json.loads(line) for line in open(data_dir / "gsm8k" / "test.jsonl")]
    (mirror / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    answer = lambda q, a, t: spaced(q)  # noqa: E731
    run_in_process(tmp_path, data_dir, monkeypatch, answer, data_dir=str(mirror))
    rows[1]["question"] = rows[1]["question"] + " (corrected)"  # the data changed under --out
    (mirror / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    progress = read_jsonl(tmp_path / "out" / "progress.jsonl")
    line = 1 + [r["index"] for r in progress].index(1)
    with pytest.raises(InputError) as refused:
        run_in_process(tmp_path, data_dir, monkeypatch, answer, data_dir=str(mirror))
    assert str(refused.value).startswith(f"{tmp_path / 'out' / 'progress.jsonl'}:{line}: field 'original': item 1 (")


def test_meaning_checks_batch_what_arrived_without_holding_back_the_rest(tmp_path, data_dir, monkeypatch):
    """A slow meaning check (HumanEval runs programs) takes whatever arrived meanwhile in one batch, while the
    other requests stay in flight; the first item is recorded before the last reply is in."""
    from rephraser.benchmarks.gsm8k import GSM8K
    from rephraser.rephrase.backends import OpenAIBackend
    from rephraser.rephrase.config import RephraseConfig
    from rephraser.rephrase.loop import finish_items
    from rephraser.rephrase.store import Store

    index = by_question(data_dir, 6)
    checks: list[tuple[float, int]] = []

    class SlowCheck(GSM8K):
        def check(self, items, candidates, translate=None):
            checks.append((time.monotonic(), len(items)))
            time.sleep(1.0)
            return super().check(items, candidates, translate)

    def reply(question, attempt, transient):
        time.sleep(0.4 * index[question])  # replies arrive one by one over 2 s
        return spaced(question)

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    server = FakeOpenAI(reply, key=KEY).start()
    cfg = RephraseConfig(
        backend="openai", model="m", api_base=server.url, benchmark="gsm8k", limit=6, concurrency=6, out=str(tmp_path)
    )
    preset, store = SlowCheck(data_dir=str(data_dir)), Store(tmp_path / "out", cfg)
    finished: dict[int, float] = {}
    record = store.finish
    store.finish = lambda r: (finished.setdefault(r["index"], time.monotonic()), record(r))
    try:
        finish_items(preset.items()[:6], preset, OpenAIBackend(cfg), cfg, store, log=lambda *_: None)
    finally:
        store.close()
        server.stop()
    last_reply = max(t for t, *_ in server.log)
    assert sorted(finished) == list(range(6)) and finished[0] < last_reply
    assert sum(n for _, n in checks) == 6 and len(checks) < 6 and max(n for _, n in checks) > 1


@pytest.mark.slow
def test_kill_during_a_round_keeps_every_reply_already_decided(tmp_path, data_dir):
    """One request of the round hangs; the others' replies are recorded as they pass. SIGKILL the real command
    while that request still hangs: the resumed run asks again only for that item."""
    questions = gsm8k_questions(data_dir, 12)
    index = {q.strip(): i for i, q in enumerate(questions)}

    def reply(question, attempt, transient):
        return ("hang", 40) if index[question] == 5 and transient else spaced(question)

    server = FakeOpenAI(reply, key=KEY).start()
    args = ("--benchmark", "gsm8k", "--backend", "openai", "--model", "m", "--api-base", server.url)
    args += ("--limit", 12, "--concurrency", 12, "--out", tmp_path / "out")
    env = {"OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir)}
    progress = tmp_path / "out" / "progress.jsonl"
    try:
        exe = Path(sys.executable).with_name("rephraser")
        proc = subprocess.Popen(
            [str(exe), "rephrase", *map(str, args)],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.log:
            time.sleep(0.05)
        deadline = time.monotonic() + 15  # the hanging request lasts 40 s: the others must not wait for it
        while time.monotonic() < deadline and not (progress.is_file() and progress.read_text().count("\n") >= 11):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        recorded = {r["index"] for r in read_jsonl(progress)} if progress.is_file() else set()
        assert recorded == set(range(12)) - {5}, f"recorded before the kill: {sorted(recorded)}"
        resumed = rephraser(*args, env=env)
        assert resumed.returncode == 0 and "resuming: 11 of 12" in resumed.stdout, resumed.stderr[-2000:]
    finally:
        server.stop()
    asked_again = {index[q] for t, q, a, s in server.log if t > killed_at}
    assert asked_again == {5}
    records = read_jsonl(tmp_path / "out" / "records.jsonl")
    assert [r["status"] for r in records] == ["accepted"] * 12


@pytest.mark.slow
def test_code_ast_rewrites_humaneval_and_the_twin_scores_gold_100(tmp_path, data_dir):
    out = tmp_path / "out"
    done = rephraser(
        "--benchmark",
        "humaneval",
        "--backend",
        "code-ast",
        "--confirm-run-unsafe-code",
        "--out",
        out,
        env={"REPHRASER_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["accepted"] >= 0.95 * 164, report["failures"]
    assert len(report["failures"]) == 164 - report["counts"]["accepted"] and all(
        f["reason"] for f in report["failures"]
    )
    records = read_jsonl(out / "records.jsonl")
    assert all(r["shared_words"] < 10 for r in records if r["status"] == "accepted")
    from rephraser.overlap import longest_shared_run

    assert all(longest_shared_run(r["original"], r["rephrased"]).words < 10 for r in records if r["rephrased"])
    # The twin, through the existing task: gold replay (each program's own body) passes every accepted program.
    from lm_eval import simple_evaluate
    from test_tasks import ReplayLM

    from rephraser.tasks import task_manager

    tm = task_manager(metadata={"rephrased_humaneval_path": str(out / "task" / "humaneval_python.jsonl")})
    results = simple_evaluate(
        model=ReplayLM(), tasks=["rephrased_humaneval"], task_manager=tm, confirm_run_unsafe_code=True
    )
    assert results["results"]["rephrased_humaneval"]["pass@1,none"] == 1.0
    assert (
        len(results["samples"]["rephrased_humaneval"]) == report["counts"]["accepted"] if "samples" in results else True
    )


@pytest.mark.vllm
def test_vllm_backend_plumbing(tmp_path, data_dir, tiny_chat):
    out = tmp_path / "out"
    done = rephraser(
        "--benchmark",
        "gsm8k",
        "--backend",
        "vllm",
        "--model",
        tiny_chat["path"],
        "--limit",
        3,
        "--max-attempts",
        2,
        "--max-tokens",
        24,
        "--out",
        out,
        env={"REPHRASER_DATA_DIR": str(data_dir), "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_jsonl(out / "records.jsonl")
    report = json.loads((out / "report.json").read_text())
    assert len(records) == 3 and sum(report["counts"]["failed"].values()) + report["counts"]["accepted"] == 3
    for r in records:  # a random model's text: plumbing, attempts and reasons, not quality
        assert 1 <= r["attempts"] <= 2 and r["completion_tokens"] > 0 and r["backend"] == "vllm"
        assert r["status"] == "accepted" or r["reason"] in ("overlap", "check", "empty", "truncated")
    cut = [h for r in records for h in r["history"] if h["outcome"] == "truncated"]  # vLLM's finish_reason "length"
    assert report["cost"]["truncated_replies"] == len(cut)


@pytest.mark.slow
def test_mmlu_preset_rejects_leaks_and_its_task_folder_loads(tmp_path, data_dir, monkeypatch):
    import csv

    rows = list(csv.reader(open(data_dir / "mmlu" / "test" / "sociology_test.csv")))[:5]
    first = rows[0][0].strip()

    def reply(question, attempt, transient):
        if question == first and attempt == 1:  # gives the answer away: rejected, asked again
            return f"{spaced(question)}\nResponse: {rows[0][1 + 'ABCD'.index(rows[0][5])]}"
        return spaced(question)

    server = FakeOpenAI(reply, key=KEY).start()
    out = tmp_path / "out"
    try:
        done = rephraser(
            "--benchmark",
            "mmlu",
            "--subjects",
            "sociology",
            "--limit",
            5,
            "--backend",
            "openai",
            "--model",
            "m",
            "--api-base",
            server.url,
            "--out",
            out,
            env={"OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir)},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_jsonl(out / "records.jsonl")
    assert (
        records[0]["history"][0]["outcome"] == "check" and "gives the answer away" in records[0]["history"][0]["detail"]
    )
    assert all(r["status"] == "accepted" for r in records)
    train = read_jsonl(out / "train.jsonl")
    assert train[0]["text"].endswith(f"\nD. {rows[0][4]}\nAnswer: {rows[0][5]}")
    from rephraser.tasks import task_manager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    docs = (
        task_manager(include_path=str(out / "task"))
        .load(["rephrased_mmlu_sociology"])["tasks"]["rephrased_mmlu_sociology"]
        .test_docs()
    )
    assert [d["question"] for d in docs] == [
        spaced(r[0].strip()) for r in rows
    ]  # the 5 rephrased, the rest placeholders


@pytest.mark.slow
def test_translate_uses_the_translation_prompt_and_feeds_the_chinese_task(tmp_path, data_dir, monkeypatch):
    import csv

    rows = list(csv.reader(open(data_dir / "mmlu" / "test" / "abstract_algebra_test.csv")))[:3]
    prompts = []

    def respond(messages):
        prompts.append(messages[0]["content"])
        question = messages[0]["content"].split("Question:\n", 1)[1]
        return "翻译：" + spaced(question)

    server = FakeOpenAI(respond=respond, key=KEY).start()
    out = tmp_path / "out"
    try:
        done = rephraser(
            "--benchmark",
            "mmlu",
            "--subjects",
            "abstract_algebra",
            "--limit",
            3,
            "--translate",
            "Chinese",
            "--backend",
            "openai",
            "--model",
            "m",
            "--api-base",
            server.url,
            "--out",
            out,
            env={"OPENAI_API_KEY": KEY, "REPHRASER_DATA_DIR": str(data_dir)},
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(p.startswith("Translate the following exam question into Chinese") for p in prompts)
    lines = [
        json.loads(line) for line in (out / "task" / "abstract_algebra_test_chinese_filtered_question.jsonl").open()
    ]
    assert len(lines) == 100 and lines[0]["text"].endswith(f"\nD. {rows[0][4]}") and lines[5]["text"] == ""
    from rephraser.tasks import task_manager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    tm = task_manager(include_path=str(out / "task"))
    docs = tm.load(["rephrased_mmlu_zh_abstract_algebra"])["tasks"]["rephrased_mmlu_zh_abstract_algebra"].test_docs()
    assert len(docs) == 3 and docs[0]["question"].startswith("翻译：") and docs[0]["answer"] == "ABCD".index(rows[0][5])
