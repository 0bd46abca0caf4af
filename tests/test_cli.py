"""The installed `rephraser` console script, in subprocesses: flags, --config, errors and exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rephraser.data.tokfile import TokenFile

RAW_BAD = {
    "malformed JSON": (b'{"text": "ok"}\n{"text": "cut\n', "bad.jsonl:2: not valid JSON"),
    "missing field": (b'{"text": "ok"}\n{"prompt": "def f():"}\n', "bad.jsonl:2: field 'canonical_solution': missing"),
    "non-string field": (
        b'{"text": "ok"}\n{"text": "a"}\n{"question": "q", "answer": 42}\n',
        "bad.jsonl:3: field 'answer': expected a string, got int",
    ),
    "non-UTF-8 byte": (b'{"text": "ok"}\n{"text": "\xff"}\n', "bad.jsonl:2: not valid UTF-8"),
    "not an object": (b'{"text": "ok"}\n"text"\n', "bad.jsonl:2: expected a JSON object, got str"),
}


def rephraser(*args, cwd=None):
    exe = Path(sys.executable).with_name("rephraser")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(RAW_BAD))
def test_bad_input_names_file_line_field_and_leaves_nothing(tmp_path, tokenizer_dirs, case):
    raw, message = RAW_BAD[case]
    (tmp_path / "bad.jsonl").write_bytes(raw * 1 if case != "malformed JSON" else raw)
    result = rephraser(
        "tokenize", "--model", tokenizer_dirs["bpe"], "--in", tmp_path / "bad.jsonl", "--batch-size", "1"
    )
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no outputs, no temp files


@pytest.mark.slow
def test_tokenize_cli_with_config_file_and_flag_override(tmp_path, tokenizer_dirs, data_dir):
    src = data_dir / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl"
    (tmp_path / "cfg.yaml").write_text(
        f"model: {tokenizer_dirs['spm']}\nmax_seq_len: 99\nlayout: ragged\nmask_prompt: true\n"
    )
    out = tmp_path / "he.tok"
    result = rephraser(
        "tokenize", "--config", tmp_path / "cfg.yaml", "--in", src, "--out", out, "--max-seq-len", "256", "--debug"
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 147 samples" in result.stdout and "empty rows skipped: 17 (lines 18, 20, 45" in result.stdout
    assert "--- sample 0:" in result.stdout and "def nearby_elements_exist" in result.stdout
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["config"]["max_seq_len"] == 256 and meta["config"]["mask_prompt"] is True  # flag beat the file
    tf = TokenFile(out)
    assert tf.layout == "ragged" and tf.lengths().max() == 256 and meta["counts"]["overflow"] > 0


@pytest.mark.slow
def test_default_output_name_and_permissions(tmp_path, tokenizer_dirs):
    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n')
    assert rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", cwd=tmp_path).returncode == 0
    out = tmp_path / "r.tok"
    assert np.load(out).shape == (1, 1536)
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["tokenize", "--in", "x.jsonl"], 1, "missing required field(s) ['model']"),
        (["tokenize", "--model", "m", "--in", "x.jsonl", "--layout", "zigzag"], 2, "invalid choice: 'zigzag'"),
        (["tokenize", "--model", "m", "--in", "x.jsonl", "--out", "x.bin"], 1, "out: must end in .tok"),
        (
            ["tokenize", "--model", "m", "--in", "x.jsonl", "--config", "cfg.yaml"],
            1,
            "cfg.yaml: unknown key(s) ['epochs']",
        ),
        (["tokenize", "--model", "no/such/model", "--in", "x.jsonl"], 1, "no/such/model: cannot load a tokenizer"),
        (["frobnicate"], 2, "unknown command 'frobnicate'"),
    ],
)
@pytest.mark.slow
def test_usage_errors(tmp_path, args, code, message):
    (tmp_path / "cfg.yaml").write_text("epochs: 3\n")
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    result = rephraser(*args, cwd=tmp_path)
    assert result.returncode == code and message in result.stderr, result.stderr


# ---------------------------------------------------------------- outputs never overwrite inputs or appear half-written


@pytest.mark.parametrize(
    "source, out", [("d/x.tok", "d/x.tok"), ("d/x.msk", "d/x.tok"), ("d/x.tok.json", "d/x.tok"), ("d/x.idx", "d/x.tok")]
)
@pytest.mark.slow
def test_tokenize_refuses_to_overwrite_its_input(tmp_path, tokenizer_dirs, source, out):
    (tmp_path / "d").mkdir()
    (tmp_path / source).write_text('{"text": "hello"}\n')
    before = (tmp_path / source).read_bytes()
    result = rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", source, "--out", out, cwd=tmp_path)
    assert result.returncode == 1 and "would overwrite the input" in result.stderr
    assert (tmp_path / source).read_bytes() == before and sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        Path(source).name
    ]


@pytest.mark.slow
def test_an_existing_directory_as_output_publishes_nothing(tmp_path, tokenizer_dirs):
    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "x.tok").mkdir()
    result = rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", "--out", "x.tok", cwd=tmp_path)
    assert result.returncode == 1 and "x.tok: is a directory" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "x.tok"]


@pytest.mark.slow
def test_a_failed_run_removes_the_directories_it_created(tmp_path, tokenizer_dirs):
    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n{"text": 5}\n')
    result = rephraser(
        "tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", "--out", "new/deeper/x.tok", cwd=tmp_path
    )
    assert result.returncode == 1 and "r.jsonl:2: field 'text'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


@pytest.mark.slow
def test_a_mixed_set_is_refused(tmp_path, tokenizer_dirs):
    """A set whose files come from two runs (as a rename cut short leaves it) fails its sidecar's check."""
    from rephraser.errors import InputError

    for name, text in (("a", "hello there"), ("b", "general kenobi, you are a bold one")):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"text": text}) + "\n")
        assert (
            rephraser(
                "tokenize",
                "--model",
                tokenizer_dirs["bpe"],
                "--in",
                f"{name}.jsonl",
                "--out",
                f"{name}/x.tok",
                "--max-seq-len",
                "32",
                cwd=tmp_path,
            ).returncode
            == 0
        )
    (tmp_path / "b" / "x.msk").write_bytes((tmp_path / "a" / "x.msk").read_bytes())  # same shape, other content
    with pytest.raises(InputError, match="x.msk: content does not match x.tok.json"):
        TokenFile(tmp_path / "b" / "x.tok").verify()
    (tmp_path / "b" / "x.tok").write_bytes((tmp_path / "a" / "x.tok").read_bytes()[:-2])
    with pytest.raises(InputError, match="does not belong with x.tok.json"):
        TokenFile(tmp_path / "b" / "x.tok")


@pytest.mark.parametrize(
    "case", ["sidecar not JSON", "sidecar not an object", "idx not monotonic", "idx past the end", "negative ids"]
)
@pytest.mark.slow
def test_corrupt_token_files_are_one_line_errors(tmp_path, tokenizer_dirs, case):
    from rephraser.errors import InputError

    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n{"text": "world wide"}\n')
    assert (
        rephraser(
            "tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", "--layout", "ragged", cwd=tmp_path
        ).returncode
        == 0
    )
    tok, idx, meta = tmp_path / "r.tok", tmp_path / "r.idx", tmp_path / "r.tok.json"
    if case == "sidecar not JSON":
        meta.write_text("{nope")
    elif case == "sidecar not an object":
        meta.write_text("[1, 2]")
    else:
        meta.unlink()  # as the study's own files: only the arrays are checked
        index = np.load(idx)
        if case == "idx not monotonic":
            _save(idx, index[[0, 2, 1]])
        elif case == "idx past the end":
            _save(idx, index + np.array([0, 0, 5]))
        else:
            _save(tok, np.load(tok).astype(np.int32) * -1)
    with pytest.raises(InputError) as err:
        TokenFile(tok)
    assert str(err.value).startswith(str(tmp_path / "r."))


def _save(path, array):
    with open(path, "wb") as fh:  # np.save(path) would append ".npy"
        np.save(fh, array)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-seq-len", str(2**40)], "max_seq_len: 1099511627776 is larger than the supported maximum"),
        (["--out", "/proc/nope/x.tok"], "x.tok: cannot write the output here"),
    ],
)
@pytest.mark.slow
def test_impossible_settings_are_one_line_errors(tmp_path, tokenizer_dirs, args, message):
    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n')
    result = rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", *args, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_read_only_output_directory(tmp_path, tokenizer_dirs):
    """The output directory on a read-only mount (bubblewrap), as a user's read-only share would be."""
    import shutil

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap makes the read-only mount")
    (tmp_path / "r.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "ro").mkdir()
    exe = Path(sys.executable).with_name("rephraser")
    result = subprocess.run(
        [
            "bwrap",
            "--bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--ro-bind",
            str(tmp_path / "ro"),
            str(tmp_path / "ro"),
            "--",
            str(exe),
            "tokenize",
            "--model",
            tokenizer_dirs["bpe"],
            "--in",
            "r.jsonl",
            "--out",
            "ro/x.tok",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1 and "ro/x.tok: cannot write the output here" in result.stderr, result.stderr[-2000:]
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.slow
def test_lone_surrogate_is_named(tmp_path, tokenizer_dirs):
    (tmp_path / "r.jsonl").write_text('{"text": "ok"}\n{"text": "a\\ud800b"}\n')
    result = rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", "r.jsonl", cwd=tmp_path)
    assert result.returncode == 1 and "r.jsonl:2: field 'text': lone surrogate" in result.stderr


@pytest.mark.slow
def test_a_missing_model_directory_is_named(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"text": "ok"}\n')
    result = rephraser("tokenize", "--model", "./models/nope", "--in", "r.jsonl", cwd=tmp_path)
    assert (
        result.returncode == 1
        and "./models/nope: cannot load a tokenizer: no such directory" in result.stderr
        and "Repo id" not in result.stderr
    )


@pytest.mark.slow
def test_version_and_help_list_every_flag_with_its_default():
    from rephraser import __version__

    assert rephraser("--version").stdout.strip() == f"rephraser {__version__}"
    train = rephraser("train", "--help")
    text = " ".join(train.stdout.split())
    assert train.returncode == 0 and "accelerate launch --config_file" in text and "-m rephraser.train" in text
    assert "--micro-batch-rows MICRO_BATCH_ROWS, --micro_batch_rows MICRO_BATCH_ROWS" in text
    assert "peak learning rate (default: 2e-05)" in text and "--output-dir" in text and "(required)" in text
    listing = rephraser("--help").stdout
    assert all(name in listing for name in ("tokenize", "train", "demo", "lm-eval-hook"))


@pytest.mark.slow
def test_rephraser_train_runs_the_trainer(tmp_path, tiny_llama, data_dir):
    rows = [
        json.loads(line)
        for _, line in zip(range(2), open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl"))
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        rephraser("tokenize", "--model", tiny_llama, "--in", "r.jsonl", "--layout", "ragged", cwd=tmp_path).returncode
        == 0
    )
    done = rephraser(
        "train", "--model", tiny_llama, "--data", "r.tok", "--output_dir", "run", "--max-steps", "1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
