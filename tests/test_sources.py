"""Data resolution: explicit path -> REPHRASER_DATA_DIR mirror -> hub -> pinned download; errors list what was tried."""

import hashlib
import json
import logging
import shutil

import pytest

from rephraser.data import sources


def test_explicit_path_beats_the_mirror(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"question": "q?", "answer": "x\n#### 7"}) + "\n")
    assert sources.gsm8k_test(str(mine)) == [{"question": "q?", "answer": "x\n#### 7"}]
    assert len(sources.gsm8k_test()) == 1319
    assert sources.mmlu_rows("sociology", "dev")[0]["answer"] in range(4)


def test_nothing_resolves_lists_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(sources.DataNotFound) as err:
        sources.gsm8k_test()
    text = str(err.value)
    assert "metadata gsm8k_path: not set" in text and "empty/gsm8k/test.jsonl (missing)" in text
    assert "Hugging Face hub openai/gsm8k" in text and "REPHRASER_DATA_DIR" in text


def test_lmsys_download_is_pinned_verified_and_cached(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("REPHRASER_DATA_DIR", raising=False)
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    # A mirror of the raw GitHub files, served over file:// (the same code path as https).
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", (data_dir / "lmsys_rephrase" / "rephrase").as_uri())
    path = sources.lmsys_rephrased("rephrase_gsm8k.jsonl")
    assert path.is_relative_to(tmp_path / "cache")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sources.LMSYS_SHA256["rephrase_gsm8k.jsonl"]
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", "file:///nonexistent")
    assert sources.lmsys_rephrased("rephrase_gsm8k.jsonl") == path  # served from the cache now


def test_tampered_download_is_refused(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("REPHRASER_DATA_DIR", raising=False)
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "mirror"
    fake.mkdir()
    shutil.copy(data_dir / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl", fake / "rephrase_gsm8k.jsonl")
    monkeypatch.setenv("REPHRASER_LMSYS_BASE_URL", fake.as_uri())
    with pytest.raises(sources.DataNotFound, match="sha256 .* != pinned"):
        sources.lmsys_rephrased("rephrase_gsm8k.jsonl")
    assert not list((tmp_path / "cache").rglob("*.jsonl"))  # nothing half-written or unverified stays


def test_misaligned_rephrased_file_is_an_error(tmp_path, data_dir, monkeypatch):
    from rephraser.errors import InputError
    from rephraser.tasks.common import gsm8k_dataset

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"text": "Question: q\nAnswer: \n#### 1"}) + "\n")
    with pytest.raises(InputError, match="1 records, but the original has 1319"):
        gsm8k_dataset("rephrased", rephrased_gsm8k_path=str(short))


def test_rephrased_gsm8k_lines_out_of_order_are_refused(tmp_path, data_dir, monkeypatch):
    from rephraser.errors import InputError
    from rephraser.tasks.common import gsm8k_dataset

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
        gsm8k_dataset("rephrased", rephrased_gsm8k_path=str(swapped))


@pytest.mark.parametrize(
    "key, value",
    [
        ("rephrased_gsm8k_path", "/nonexistent.jsonl"),
        ("gsm8k_path", "/nonexistent.jsonl"),
        ("data_dir", "/nonexistent-dir"),
    ],
)
def test_an_explicit_source_that_does_not_exist_stops_the_run(data_dir, monkeypatch, key, value):
    from rephraser.errors import InputError
    from rephraser.tasks.common import gsm8k_dataset

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))  # a mirror that would have the file
    with pytest.raises(InputError, match=f"{value}: .*(no such file|no such directory).*named explicitly"):
        gsm8k_dataset("rephrased", **{key: value})


def test_every_load_logs_its_source(data_dir, monkeypatch, caplog):
    from rephraser.tasks.common import gsm8k_dataset

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    monkeypatch.setattr(logging.getLogger("rephraser"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="rephraser"):
        gsm8k_dataset("rephrased")
    text = caplog.text
    assert f"GSM-8K test: 1319 records from REPHRASER_DATA_DIR mirror {data_dir}/gsm8k/test.jsonl" in text
    assert f"GSM-8K train: 7473 records from REPHRASER_DATA_DIR mirror {data_dir}/gsm8k/train.jsonl" in text
    assert "rephrased rephrase_gsm8k.jsonl from REPHRASER_DATA_DIR mirror" in text


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "Question: q\\nAnswer: \\n#### 1"', "not a valid JSON line"),
        ("", "blank line"),
        ('{"question": "q"}', "field 'text': expected an object with a string 'text'"),
    ],
)
def test_a_bad_line_in_a_rephrased_file_names_file_and_line(tmp_path, data_dir, monkeypatch, line, message):
    from rephraser.errors import InputError
    from rephraser.tasks.common import gsm8k_dataset

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    lines = (data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl").read_text().splitlines()
    lines[6] = line
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"bad.jsonl:7: .*{message}"):
        gsm8k_dataset("rephrased", rephrased_gsm8k_path=str(bad))


def test_cache_dir_honours_xdg_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("REPHRASER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_dir() == tmp_path / "xdg" / "rephraser"
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "mine"))
    assert sources.cache_dir() == tmp_path / "mine"
