"""The greedy-until contract for `rephraser-hf` and `rephraser-vllm` (real vLLM, CPU build, in .venv-vllm).

Each contract test runs once per backend; the vllm parameter carries the `vllm` marker, so `make test` runs it
in the vLLM venv (`pytest -m vllm`) and the rest in the main one (`pytest -m "not vllm"`).
"""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rephraser.models.stops import cut_at_stops

PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many?\nAnswer:",
    "def add(a, b):\n",
    "The capital of",
    "Natalia sold clips to 48 of her friends in April",
    "x",
    "Question: A train travels 60 miles per hour.\nAnswer:",
]
NEVER = "\x00never"
MAX_LEN = 96
_CACHE = {}


def instance(context, gen_kwargs, idx=0, request_type="generate_until"):
    from lm_eval.api.instance import Instance

    return Instance(request_type=request_type, doc={}, arguments=(context, gen_kwargs), idx=idx)


def make_lm(kind, model_dir, batch_size=4):
    key = (kind, str(model_dir), batch_size)
    if key not in _CACHE:
        if kind == "vllm":
            from rephraser.models.vllm import RephraserVLLM

            _CACHE[key] = RephraserVLLM(
                pretrained=str(model_dir), dtype="float32", max_model_len=MAX_LEN, enforce_eager=True
            )
        else:
            from lm_eval.models.huggingface import HFLM

            from rephraser.models.hf import RephraserHFLM

            cls = HFLM if kind == "lm_eval_hf" else RephraserHFLM
            _CACHE[key] = cls(
                pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=batch_size, max_length=MAX_LEN
            )
    return _CACHE[key]


@pytest.fixture(params=["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def lm(request, tiny_llama):
    return make_lm(request.param, tiny_llama)


def free_text(lm, prompt, n=24):
    """The backend's unconstrained greedy continuation (no stop can hit)."""
    return lm.generate_until(
        [instance(prompt, {"until": [NEVER], "max_gen_toks": n, "do_sample": False})], disable_tqdm=True
    )[0]


def test_continuation_equals_transformers_greedy(lm, tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(tiny_llama), AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    texts = lm.generate_until([instance(p, {"until": [NEVER], "max_gen_toks": 16}) for p in PROMPTS], disable_tqdm=True)
    for prompt, text in zip(PROMPTS, texts):
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            ref = model.generate(**ids, max_new_tokens=16, do_sample=False, eos_token_id=tok.eos_token_id)[
                0, ids.input_ids.shape[1] :
            ]
        ref_ids = [t for t in ref.tolist() if t != tok.eos_token_id]
        expected = tok.decode(ref_ids, skip_special_tokens=True)
        if hasattr(lm, "llm"):  # vLLM: the engine's own token ids must equal transformers' (fp32 greedy)
            from vllm import SamplingParams, TokensPrompt

            out = lm.llm.generate(
                [TokensPrompt(prompt_token_ids=ids.input_ids[0].tolist())],
                SamplingParams(temperature=0, max_tokens=16),
                use_tqdm=False,
            )[0].outputs[0]
            assert [t for t in out.token_ids if t != tok.eos_token_id] == ref_ids
            # vLLM's detokenizer holds back a trailing incomplete UTF-8 byte that decode() shows as U+FFFD
            expected = expected.removesuffix("\ufffd") if not text.endswith("\ufffd") else expected
        # BOS as the tokenizer adds it, only the continuation, max_gen_toks new tokens
        assert text == expected


def test_stops_spanning_tokens_or_inside_one_token(lm):
    tok = lm.tokenizer
    checked = 0
    for prompt in PROMPTS:
        free = free_text(lm, prompt)
        pieces = [tok.decode([t]) for t in tok(free, add_special_tokens=False)["input_ids"]]
        starts = [sum(len(p) for p in pieces[:k]) for k in range(len(pieces))]
        candidates = [free[b - 2 : b + 2] for b in starts[2:5] if b + 2 <= len(free)]  # across a token boundary
        candidates += [
            free[s + 1 : s + len(p) - 1] for s, p in zip(starts[:6], pieces[:6]) if len(p) >= 3
        ]  # inside one token
        for stop in (c for c in candidates if c.strip()):
            out = lm.generate_until([instance(prompt, {"until": [stop], "max_gen_toks": 24})], disable_tqdm=True)[0]
            assert out == free[: free.find(stop)], (prompt, stop)
            checked += 1
    assert checked >= 6


def test_earliest_of_several_stops_wins(lm):
    for prompt in PROMPTS[:4]:
        free = free_text(lm, prompt)
        if len(free) >= 12:
            late, early = free[8:11], free[3:6]
            out = lm.generate_until(
                [instance(prompt, {"until": [late, early], "max_gen_toks": 24})], disable_tqdm=True
            )[0]
            assert out == cut_at_stops(free, [late, early]) == free[: free.find(early)]


def test_any_order_and_batch_size_give_the_same_text_as_one_at_a_time(lm, tiny_llama):
    kinds = [
        {"until": ["\n"], "max_gen_toks": 20},
        {"until": [".", "Question:"], "max_gen_toks": 12},
        {"until": [NEVER], "max_gen_toks": 5},
    ]
    requests = [instance(p, kinds[i % 3], idx=i) for i, p in enumerate(PROMPTS * 3)]
    reference = make_lm("hf", tiny_llama, batch_size=1).generate_until(requests, disable_tqdm=True)
    order = list(range(len(requests)))
    random.Random(0).shuffle(order)
    shuffled = lm.generate_until([requests[i] for i in order], disable_tqdm=True)
    assert [shuffled[order.index(i)] for i in range(len(requests))] == reference
    assert make_lm("lm_eval_hf", tiny_llama, batch_size=1).generate_until(requests, disable_tqdm=True) == reference


def test_long_contexts_are_left_truncated_and_eos_never_leaks(lm):
    long_prompt = "Question: " + "the number one and the number two " * 60 + "\nAnswer:"
    assert len(lm.tok_encode(long_prompt)) > MAX_LEN
    out = lm.generate_until([instance(long_prompt, {"until": [NEVER], "max_gen_toks": 8})], disable_tqdm=True)[0]
    assert len(lm.tok_encode(out, add_special_tokens=False)) <= 8
    assert lm.tokenizer.eos_token not in out


def test_loglikelihood_matches_lm_eval_hf(lm, tiny_llama):
    pairs = [
        ("Question: 2+2?\nAnswer:", " A"),
        ("Question: 2+2?\nAnswer:", " B"),
        ("The capital of", " France"),
        ("x", " y z"),
    ]
    requests = [instance(c, t, request_type="loglikelihood") for c, t in pairs]
    for r, (c, t) in zip(requests, pairs):
        r.arguments = (c, t)
    ours = lm.loglikelihood(requests, disable_tqdm=True)
    ref = make_lm("lm_eval_hf", tiny_llama, batch_size=1).loglikelihood(requests, disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(ours, ref):
        assert a == pytest.approx(b, abs=2e-3) and greedy_a == greedy_b


@pytest.mark.vllm
@pytest.mark.parametrize("model", ["rephraser-vllm", "vllm"])
def test_lm_eval_runs_vllm_backends_on_our_tasks(tmp_path, data_dir, tiny_llama, model):
    import json

    args = f"pretrained={tiny_llama},dtype=float32,max_model_len=512,enforce_eager=True"
    exe = Path(sys.executable).with_name("lm_eval")
    done = subprocess.run(
        [
            str(exe),
            "run",
            "--model",
            model,
            "--model_args",
            args,
            "--tasks",
            "rephrased_gsm8k,original_mmlu_abstract_algebra",
            "--limit",
            "4",
            "--output_path",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "REPHRASER_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"]
    assert (
        "exact_match,strict-match" in results["rephrased_gsm8k"]
        and "acc,none" in results["original_mmlu_abstract_algebra"]
    )


def train_on_four_rows(tmp_path, model_dir, data_dir, *args) -> Path:
    """rephraser tokenize + python -m rephraser.train on 4 LMSYS GSM-8K rows; returns the output directory."""
    import json

    from rephraser.data.tokenize import TokenizeConfig, tokenize_file

    rows = [
        json.loads(line)
        for _, line in zip(range(4), open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl"))
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TokenizeConfig(model=str(model_dir), input=str(tmp_path / "r.jsonl"), layout="ragged")
    tokenize_file(cfg, log=lambda *_: None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rephraser.train",
            "--model",
            str(model_dir),
            "--data",
            str(cfg.out_path()),
            "--output-dir",
            str(tmp_path / "run"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / "run"


@pytest.mark.vllm
def test_vllm_loads_the_trainers_output_directly(tmp_path, tiny_llama, data_dir):
    """accelerate/FSDP checkpoints are exported as plain HF dirs: vLLM serves them without conversion."""
    from rephraser.models.vllm import RephraserVLLM

    exported = train_on_four_rows(tmp_path, tiny_llama, data_dir, "--max-steps", "3", "--lr", "1e-3") / "model"
    ours = RephraserVLLM(pretrained=str(exported), dtype="float32", max_model_len=MAX_LEN, enforce_eager=True)
    request = [instance(PROMPTS[0], {"until": [NEVER], "max_gen_toks": 8})]
    assert ours.generate_until(request, disable_tqdm=True) == make_lm("hf", exported).generate_until(
        request, disable_tqdm=True
    )


# ---------------------------------------------------------------- instruct models: chat templates, several EOS ids


@pytest.fixture(params=["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def chat_lm(request, tiny_chat):
    return request.param, make_lm(request.param, tiny_chat["path"])


def reference_tokens(model_dir, prompt, n=16, eos=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    return tok, out[0, ids.input_ids.shape[1] :].tolist()


def test_every_eos_id_of_the_generation_config_ends_generation(chat_lm, tiny_chat):
    from conftest import CHAT_PROMPTS

    _, lm = chat_lm
    tok, free = reference_tokens(tiny_chat["path"], CHAT_PROMPTS[1], eos=[])  # no EOS at all: the raw greedy path
    second = free.index(tiny_chat["second_eos"])
    assert second >= 2
    out = lm.generate_until([instance(CHAT_PROMPTS[1], {"until": [NEVER], "max_gen_toks": 16})], disable_tqdm=True)[0]
    expected = tok.decode([t for t in free[:second] if t != tiny_chat["im_end"]], skip_special_tokens=True)
    assert out == expected and len(tok(out, add_special_tokens=False)["input_ids"]) < 16


def test_a_stop_string_that_is_a_special_token_is_honoured(chat_lm, tiny_chat):
    from conftest import CHAT_PROMPTS

    _, lm = chat_lm
    tok, free = reference_tokens(tiny_chat["path"], CHAT_PROMPTS[0], eos=[])
    at = free.index(tiny_chat["im_end"])
    assert at >= 2
    out = lm.generate_until(
        [instance(CHAT_PROMPTS[0], {"until": ["<|im_end|>"], "max_gen_toks": 16})], disable_tqdm=True
    )[0]
    assert out == tok.decode(free[:at], skip_special_tokens=True)


def test_chat_template_is_the_tokenizers(chat_lm, tiny_chat):
    from transformers import AutoTokenizer

    _, lm = chat_lm
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    expected = AutoTokenizer.from_pretrained(tiny_chat["path"]).apply_chat_template(
        chat, tokenize=False, add_generation_prompt=True
    )
    assert (
        lm.apply_chat_template(chat)
        == expected
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert lm.tokenizer_name


@pytest.mark.parametrize("model", ["rephraser-hf", pytest.param("rephraser-vllm", marks=pytest.mark.vllm)])
def test_lm_eval_with_chat_template_multiturn_fewshot_and_system_instruction(tmp_path, data_dir, tiny_chat, model):
    import json

    args = (
        f"pretrained={tiny_chat['path']},dtype=float32,max_length=1024"
        if model == "rephraser-hf"
        else f"pretrained={tiny_chat['path']},dtype=float32,max_model_len=1024,enforce_eager=True"
    )
    exe = Path(sys.executable).with_name("lm_eval")
    done = subprocess.run(
        [
            str(exe),
            "run",
            "--model",
            model,
            "--model_args",
            args,
            "--tasks",
            "rephrased_gsm8k",
            "--limit",
            "2",
            "--num_fewshot",
            "2",
            "--apply_chat_template",
            "--fewshot_as_multiturn",
            "--system_instruction",
            "Answer with a number.",
            "--log_samples",
            "--output_path",
            str(tmp_path / "out"),
            *(["--device", "cpu"] if model == "rephraser-hf" else []),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "REPHRASER_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for f in (tmp_path / "out").rglob("samples_rephrased_gsm8k_*.jsonl") for line in open(f)]
    prompt = rows[0]["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.startswith("<|im_start|>system\nAnswer with a number.") and prompt.count("<|im_start|>assistant") == 3


def test_batch_size_auto_is_detected_not_one(tiny_llama):
    from rephraser.models.hf import RephraserHFLM

    lm = RephraserHFLM(
        pretrained=str(tiny_llama),
        dtype="float32",
        device="cpu",
        batch_size="auto",
        max_batch_size=8,
        max_length=MAX_LEN,
    )
    out = lm.generate_until([instance(p, {"until": [NEVER], "max_gen_toks": 4}) for p in PROMPTS], disable_tqdm=True)
    assert lm._greedy_batch_size() == 8 and len(out) == len(PROMPTS)
    assert out == make_lm("hf", tiny_llama, batch_size=1).generate_until(
        [instance(p, {"until": [NEVER], "max_gen_toks": 4}) for p in PROMPTS], disable_tqdm=True
    )


@pytest.mark.vllm
def test_vllm_data_parallel_is_refused_on_cpu_with_a_clear_message(tiny_llama):
    import torch

    from rephraser.errors import ConfigError
    from rephraser.models.vllm import RephraserVLLM

    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs: see the gpu test")
    with pytest.raises(ConfigError, match="data parallelism runs one vLLM engine per GPU group and needs CUDA GPUs"):
        RephraserVLLM(pretrained=str(tiny_llama), data_parallel_size=2)


@pytest.mark.gpu
@pytest.mark.vllm
def test_vllm_data_parallel_equals_one_engine(tiny_llama):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs")
    from rephraser.models.vllm import RephraserVLLM

    requests = [instance(p, {"until": [NEVER], "max_gen_toks": 8}) for p in PROMPTS * 3]
    one = RephraserVLLM(pretrained=str(tiny_llama), dtype="float32", max_model_len=MAX_LEN).generate_until(
        requests, disable_tqdm=True
    )
    two = RephraserVLLM(pretrained=str(tiny_llama), dtype="float32", max_model_len=MAX_LEN, data_parallel_size=2)
    assert two.generate_until(requests, disable_tqdm=True) == one


@pytest.mark.vllm
def test_vllm_lora_adapter_equals_the_merged_export(tmp_path, tiny_llama, data_dir):
    """The trainer's --export-adapter output served by vLLM (lora_local_path) writes what the merged export writes."""
    from rephraser.models.vllm import RephraserVLLM

    train_on_four_rows(
        tmp_path,
        tiny_llama,
        data_dir,
        "--max-steps",
        "20",
        "--lr",
        "1e-2",
        "--lora-r",
        "8",
        "--export-adapter",
        "--save-every",
        "0",
        "--report-to",
        "none",
    )
    requests = [instance(p, {"until": [NEVER], "max_gen_toks": 12}) for p in PROMPTS[:3]]
    served = RephraserVLLM(
        pretrained=str(tiny_llama),
        dtype="float32",
        max_model_len=MAX_LEN,
        enforce_eager=True,
        lora_local_path=str(tmp_path / "run" / "adapter"),
        max_lora_rank=8,
    ).generate_until(requests, disable_tqdm=True)
    merged = make_lm("hf", tmp_path / "run" / "model").generate_until(requests, disable_tqdm=True)
    assert served == merged and served != make_lm("hf", tiny_llama).generate_until(requests, disable_tqdm=True)
