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
    "non-string field": (b'{"text": "ok"}\n{"text": "a"}\n{"question": "q", "answer": 42}\n', "bad.jsonl:3: field 'answer': expected a string, got int"),
    "non-UTF-8 byte": (b'{"text": "ok"}\n{"text": "\xff"}\n', "bad.jsonl:2: not valid UTF-8"),
    "not an object": (b'{"text": "ok"}\n"text"\n', "bad.jsonl:2: expected a JSON object, got str"),
}


def rephraser(*args, cwd=None):
    exe = Path(sys.executable).with_name("rephraser")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("case", sorted(RAW_BAD))
def test_bad_input_names_file_line_field_and_leaves_nothing(tmp_path, tokenizer_dirs, case):
    raw, message = RAW_BAD[case]
    (tmp_path / "bad.jsonl").write_bytes(raw * 1 if case != "malformed JSON" else raw)
    result = rephraser("tokenize", "--model", tokenizer_dirs["bpe"], "--in", tmp_path / "bad.jsonl", "--batch-size", "1")
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no outputs, no temp files


def test_tokenize_cli_with_config_file_and_flag_override(tmp_path, tokenizer_dirs, data_dir):
    src = data_dir / "lmsys_rephrase" / "rephrase" / "humaneval_python.jsonl"
    (tmp_path / "cfg.yaml").write_text(f"model: {tokenizer_dirs['spm']}\nmax_seq_len: 99\nlayout: ragged\nmask_prompt: true\n")
    out = tmp_path / "he.tok"
    result = rephraser("tokenize", "--config", tmp_path / "cfg.yaml", "--in", src, "--out", out, "--max-seq-len", "256", "--debug")
    assert result.returncode == 0, result.stderr
    assert "wrote 147 samples" in result.stdout and "empty rows skipped: 17 (lines 18, 20, 45" in result.stdout
    assert "--- sample 0:" in result.stdout and "def nearby_elements_exist" in result.stdout
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["config"]["max_seq_len"] == 256 and meta["config"]["mask_prompt"] is True  # flag beat the file
    tf = TokenFile(out)
    assert tf.layout == "ragged" and tf.lengths().max() == 256 and meta["counts"]["overflow"] > 0


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


@pytest.mark.parametrize("args, code, message", [
    (["tokenize", "--in", "x.jsonl"], 1, "missing required field(s) ['model']"),
    (["tokenize", "--model", "m", "--in", "x.jsonl", "--layout", "zigzag"], 2, "invalid choice: 'zigzag'"),
    (["tokenize", "--model", "m", "--in", "x.jsonl", "--out", "x.bin"], 1, "out: must end in .tok"),
    (["tokenize", "--model", "m", "--in", "x.jsonl", "--config", "cfg.yaml"], 1, "cfg.yaml: unknown key(s) ['epochs']"),
    (["tokenize", "--model", "no/such/model", "--in", "x.jsonl"], 1, "no/such/model: cannot load a tokenizer"),
    (["frobnicate"], 2, "unknown command 'frobnicate'"),
])
def test_usage_errors(tmp_path, args, code, message):
    (tmp_path / "cfg.yaml").write_text("epochs: 3\n")
    (tmp_path / "x.jsonl").write_text('{"text": "a"}\n')
    result = rephraser(*args, cwd=tmp_path)
    assert result.returncode == code and message in result.stderr, result.stderr
