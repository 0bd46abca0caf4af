"""The benchmark objects and where their data comes from: explicit path -> REPHRASER_DATA_DIR mirror -> hub ->
pinned download; errors list what was tried; a mirror file that is not the pinned one is refused."""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from rephraser.benchmarks import benchmark_class, get_benchmark, lmsys, sources
from rephraser.errors import ConfigError, InputError


def lmsys_mirror(tmp_path, data_dir):
    """A copy of the mirror whose LMSYS files a test may change (the benchmark files are linked, not copied)."""
    mirror = tmp_path / "mirror"
    (mirror / "lmsys_rephrase").mkdir(parents=True)
    for name in ("gsm8k", "mmlu"):
        (mirror / name).symlink_to(data_dir / name)
    shutil.copytree(data_dir / "lmsys_rephrase" / "rephrase", mirror / "lmsys_rephrase" / "rephrase")
    return mirror


def test_explicit_path_beats_the_mirror(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"question": "q?", "answer": "x\n#### 7"}) + "\n")
    rows = get_benchmark("gsm8k", gsm8k_path=str(mine)).split_rows("test")
    assert rows == [{"question": "q?", "answer": "x\n#### 7"}]
    assert len(get_benchmark("gsm8k").split_rows("test")) == 1319
    assert get_benchmark("mmlu").rows("sociology", "dev")[0]["answer"] in range(4)


def test_nothing_resolves_lists_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(sources.DataNotFound) as err:
        get_benchmark("gsm8k").split_rows("test")
    text = str(err.value)
    assert "metadata gsm8k_path: not set" in text and "empty/gsm8k/test.jsonl (missing)" in text
    assert "Hugging Face hub openai/gsm8k" in text and "REPHRASER_DATA_DIR" in text


def test_lmsys_download_is_pinned_verified_and_cached(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("REPHRASER_DATA_DIR", raising=False)
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    # A mirror of the raw GitHub files, served over file:// (the same code path as https).
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", (data_dir / "lmsys_rephrase" / "rephrase").as_uri())
    path = lmsys.lmsys_file("rephrase_gsm8k.jsonl")
    assert path.is_relative_to(tmp_path / "cache")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == lmsys.SHA256["rephrase_gsm8k.jsonl"]
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", "file:///nonexistent")
    assert lmsys.lmsys_file("rephrase_gsm8k.jsonl") == path  # served from the cache now


def test_tampered_download_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("REPHRASER_DATA_DIR", raising=False)
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "mirror"
    fake.mkdir()
    shutil.copy(data_dir / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl", fake / "rephrase_gsm8k.jsonl")
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", fake.as_uri())
    with pytest.raises(sources.DataNotFound, match="sha256 .* != pinned"):
        lmsys.lmsys_file("rephrase_gsm8k.jsonl")
    assert not list((tmp_path / "cache").rglob("*.jsonl"))  # nothing half-written or unverified stays


@pytest.mark.parametrize("name", ["humaneval_python.jsonl", "sociology_test_rephrase_english_filtered_question.jsonl"])
def test_a_mirror_file_with_one_extra_line_is_refused(tmp_path, data_dir, monkeypatch, name):
    """Issue 19 item 28: one extra first line shifts every record onto another item (embedding F1 0.990 -> 0.020
    with exit 0). The mirror's file must be the pinned one."""
    mirror = lmsys_mirror(tmp_path, data_dir)
    path = mirror / "lmsys_rephrase" / "rephrase" / name
    path.write_text('{"text": "an extra first line"}\n' + path.read_text())
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(mirror))
    with pytest.raises(InputError, match=f"{name}: from the REPHRASER_DATA_DIR mirror, but not the LMSYS file"):
        lmsys.lmsys_file(name)
    bench = get_benchmark("humaneval" if name.startswith("humaneval") else "mmlu")
    with pytest.raises(InputError, match="not the LMSYS file"):
        bench.docs("rephrased")


def test_an_explicit_file_of_the_wrong_length_is_refused(tmp_path, data_dir, monkeypatch):
    """A user's own rephrased file is not pinned, but its record count must equal the original's."""
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl").read_text().splitlines(keepends=True)
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"text": ""}\n' + "".join(lines))
    with pytest.raises(InputError, match="165 records, but HumanEval has 164"):
        get_benchmark("humaneval", rephrased_humaneval_path=str(mine)).docs("rephrased")


def test_misaligned_rephrased_file_is_an_error(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "Question: q\nAnswer: \n#### 1"}) + "\n")
    with pytest.raises(InputError, match="1 records, but GSM-8K test has 1319"):
        get_benchmark("gsm8k", rephrased_gsm8k_path=str(short)).splits("rephrased")


def test_rephrased_gsm8k_lines_out_of_order_are_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl").read_text().splitlines(keepends=True)
    lines[10], lines[11] = lines[11], lines[10]  # two records swapped: each would be scored against the other's gold
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("".join(lines))
    with pytest.raises(
        InputError,
        match=r"swapped.jsonl:11: field 'text': ends in '#### \d+' but the GSM-8K test item "
        r"at index 10 has gold \d+: the file is not index-aligned",
    ):
        get_benchmark("gsm8k", rephrased_gsm8k_path=str(swapped)).splits("rephrased")


@pytest.mark.parametrize(
    "key, value",
    [
        ("rephrased_gsm8k_path", "/nonexistent.jsonl"),
        ("gsm8k_path", "/nonexistent.jsonl"),
        ("data_dir", "/nonexistent-dir"),
    ],
)
def test_an_explicit_source_that_does_not_exist_stops_the_run(data_dir, monkeypatch, key, value):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))  # a mirror that would have the file
    with pytest.raises(InputError, match=f"{value}: .*(no such file|no such directory).*named explicitly"):
        get_benchmark("gsm8k", **{key: value}).splits("rephrased")


def test_every_load_logs_its_source(data_dir, monkeypatch, caplog):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    monkeypatch.setattr(logging.getLogger("rephraser"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="rephraser"):
        get_benchmark("gsm8k").splits("rephrased")
    text = caplog.text
    assert f"GSM-8K test: 1319 records from REPHRASER_DATA_DIR mirror {data_dir}/gsm8k/test.jsonl" in text
    assert f"GSM-8K train: 7473 records from REPHRASER_DATA_DIR mirror {data_dir}/gsm8k/train.jsonl" in text
    assert "rephrased rephrase_gsm8k.jsonl from REPHRASER_DATA_DIR mirror" in text and "sha256 verified" in text


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "Question: q\\nAnswer: \\n#### 1"', "not a valid JSON line"),
        ("", "blank line"),
        ('{"question": "q"}', "field 'text': expected an object with a string 'text'"),
    ],
)
def test_a_bad_line_in_a_rephrased_file_names_file_and_line(tmp_path, data_dir, monkeypatch, line, message):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl").read_text().splitlines()
    lines[6] = line
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"bad.jsonl:7: .*{message}"):
        get_benchmark("gsm8k", rephrased_gsm8k_path=str(bad)).splits("rephrased")


def test_cache_dir_honours_xdg_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("REPHRASER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_dir() == tmp_path / "xdg" / "rephraser"
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "mine"))
    assert sources.cache_dir() == tmp_path / "mine"


# ---------------------------------------------------------------- the objects


def test_one_id_scheme_everywhere(data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    for name, example in (("gsm8k", "gsm8k/17"), ("mmlu", "mmlu/sociology/3"), ("humaneval", "HumanEval/17")):
        bench = get_benchmark(name)
        item_ids = {item.id for item in bench.items()}
        doc_ids = {doc["id"] for variant in ("original", "rephrased") for doc in bench.docs(variant)}
        assert example in item_ids and doc_ids <= item_ids, name  # rephrase, detect and experiment share them


@pytest.mark.slow
def test_the_training_text_is_the_evaluated_prompt_then_the_target(data_dir, monkeypatch):
    """A training format that drifts from the evaluation format is a silent wrong number: the training text must
    start with exactly the 0-shot context lm-eval renders for the same doc, its task description included (MMLU's
    "The following are multiple choice questions ..." was missing), for a --task benchmark too; a multiple-choice
    target is lm-eval's delimiter and gold choice."""
    from rephraser.benchmarks import from_settings
    from rephraser.tasks import task_manager

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    tasks = task_manager().load(["original_gsm8k", "original_mmlu_sociology", "original_humaneval"])["tasks"]
    as_task = from_settings(task="original_mmlu_sociology", data_dir=str(data_dir))
    cases = [(get_benchmark("gsm8k"), "original_gsm8k"), (get_benchmark("mmlu"), "original_mmlu_sociology"),
             (get_benchmark("humaneval"), "original_humaneval"), (as_task, "original_mmlu_sociology")]  # fmt: skip
    for bench, task in cases:
        lm_task = tasks[task]
        for doc in list(lm_task.eval_docs)[:20]:
            context = lm_task.fewshot_context(doc, 0)
            assert bench.training_text(doc).startswith(context), (bench.name, doc["id"])
            if lm_task.config.output_type == "multiple_choice":
                gold = lm_task.doc_to_choice(doc)[lm_task.doc_to_target(doc)]
                assert bench.training_text(doc) == context + lm_task.config.target_delimiter + gold
    doc = tasks["original_mmlu_sociology"].eval_docs[0]
    assert get_benchmark("mmlu").training_text(doc).startswith("The following are multiple choice questions")
    doc = tasks["original_gsm8k"].eval_docs[0]
    assert get_benchmark("gsm8k").training_text(doc) == f"Question: {doc['question']}\nAnswer: \n#### 18"


def test_the_rephrased_gsm8k_training_texts_are_the_lmsys_lines(data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    lines = sources.read_rephrased_texts(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")
    texts = get_benchmark("gsm8k").training_texts("rephrased")
    assert len(texts) == 1315 and all(texts[f"gsm8k/{i}"] == lines[i] for i in (0, 17, 1318))
    assert "gsm8k/309" not in texts  # an empty placeholder has no training text


def test_empty_translations_have_no_training_text(data_dir, monkeypatch):
    """Issue 19 item 6: 5 eligible items per language have empty C / JS translations; they have no text at all."""
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    bench = get_benchmark("humaneval")
    both = {d["id"] for d in bench.docs("original")} & {d["id"] for d in bench.docs("rephrased")}
    for language, empty in (("c", {46, 115, 117, 122, 139}), ("js", {58, 86, 113, 127, 130})):
        texts = bench.training_texts("translated", language)
        assert all(t.strip() for t in texts.values())
        assert both - set(texts) == {f"HumanEval/{n}" for n in empty}, language


def test_unknown_benchmarks_and_folders_are_named(tmp_path):
    registered = "registered: \\['gsm8k', 'humaneval', 'mmlu'\\]"
    with pytest.raises(ConfigError, match=f"'gsm9k' is not a benchmark .*{registered}"):
        benchmark_class("gsm9k")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "benchmark.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no BENCHMARK"):
        benchmark_class(str(tmp_path / "empty"))


def test_a_folder_on_the_path_named_like_a_builtin_is_refused_not_shadowed(tmp_path, monkeypatch):
    """A modified copy of gsm8k/ put on REPHRASER_BENCHMARK_PATH and named `gsm8k` silently got the built-in's
    data, prompts and training texts. Both exist: the user is asked which; the path form names the folder."""
    import shutil

    from rephraser import benchmarks
    from rephraser.errors import ConfigError

    copy = tmp_path / "gsm8k"
    shutil.copytree(Path(benchmarks.__file__).parent / "gsm8k", copy)
    with open(copy / "benchmark.py", "a") as fh:  # a folder benchmark names its class
        fh.write("\n\nclass MyGSM8K(GSM8K):\n    pass\n\n\nBENCHMARK = MyGSM8K\n")
    monkeypatch.setenv("REPHRASER_BENCHMARK_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=f"also the folder {copy} on REPHRASER_BENCHMARK_PATH"):
        benchmarks.benchmark_class("gsm8k")
    assert benchmarks.benchmark_class(str(copy)).__name__ == "MyGSM8K"
    monkeypatch.delenv("REPHRASER_BENCHMARK_PATH")
    assert benchmarks.benchmark_class("gsm8k").__name__ == "GSM8K"
