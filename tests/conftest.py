"""Shared fixtures: offline tokenizers built once per test session, and the ../shared/data mirror."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("REPHRASER_DATA_DIR", REPO.parent / "shared" / "data"))


def _training_texts() -> list[str]:
    texts = [json.loads(line)["question"] for line in open(DATA_DIR / "gsm8k" / "train.jsonl")][:1500]
    return texts + ["def f(x):\n    return [i for i in range(x)]\n\t\"\"\"doc\"\"\" ünï 日本 {}()"] * 5


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "gsm8k" / "train.jsonl").is_file():
        pytest.fail(f"benchmark mirror not found at {DATA_DIR}: set REPHRASER_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory, data_dir):
    from rephraser.testing.tokenizers import build_bpe_tokenizer

    return build_bpe_tokenizer(_training_texts(), tmp_path_factory.mktemp("bpe"))


@pytest.fixture(scope="session")
def spm_tokenizers(tmp_path_factory, data_dir):
    from rephraser.testing.tokenizers import build_llama_spm_tokenizers

    return build_llama_spm_tokenizers(_training_texts(), tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def tokenizer_dirs(bpe_tokenizer, spm_tokenizers):
    """Directories loadable by `rephraser tokenize --model DIR`."""
    fast_dir = Path(spm_tokenizers[1].name_or_path) / "fast"
    spm_tokenizers[1].save_pretrained(fast_dir)
    return {"bpe": bpe_tokenizer.name_or_path, "spm": str(fast_dir)}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, bpe_tokenizer):
    """A tiny random LlamaForCausalLM with the BPE tokenizer, saved as an ordinary HF directory."""
    from rephraser.testing.models import build_tiny_llama

    return build_tiny_llama(bpe_tokenizer, tmp_path_factory.mktemp("tiny-llama"))


# vLLM's CPU build (tests run it in .venv-vllm): a small KV cache, in-process engine, no usage stats.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")


CHAT_PROMPTS = ("Question: Tom has 3 apples and buys 4 more. How many?\nAnswer:", "The capital of")


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory, tiny_llama):
    """The tiny model as an instruct model: ChatML template, `<|im_end|>` emitted after some text for
    CHAT_PROMPTS[0], and a second EOS id in its generation config that CHAT_PROMPTS[1] reaches."""
    from rephraser.testing.models import build_tiny_chat_llama

    return build_tiny_chat_llama(tiny_llama, tmp_path_factory.mktemp("tiny-chat"), CHAT_PROMPTS)


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip cleanly where there is no CUDA (CI never has one). `vllm` tests skip where the venv's path
    has a space: the vllm-cpu build then breaks on its own (its LD_PRELOAD of libgomp and torch inductor's compile
    commands split such paths), which no code of ours can mend."""
    import sys

    if " " in sys.prefix:
        skip = pytest.mark.skip(reason="vllm-cpu cannot run from a path with a space (LD_PRELOAD, inductor)")
        for item in items:
            if "vllm" in item.keywords:
                item.add_marker(skip)
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
