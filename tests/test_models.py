"""The greedy-until contract for `rephraser-hf` and `rephraser-vllm` (real vLLM, CPU build, in .venv-vllm).

Each contract test runs once per backend and per tokenizer convention: "bpe" (adds BOS, no unk) and "gpt2"
(GPT-2 / Pythia / SmolLM2 base / StarCoder: one "<|endoftext|>" that is unk, bos and eos at once, no BOS added).
The vllm parameter carries the `vllm` marker, so `make test` runs it in the vLLM venv (`pytest -m vllm`) and the
rest in the main one (`pytest -m "not vllm"`). Then: generation settings (they reach HF generate or vLLM's
SamplingParams as lm-eval's `hf` applies them, or are refused), seeds of sampled requests, the import graph.
"""

import os
import random
import re
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


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory, data_dir):
    """The tiny Llama on a GPT-2-style tokenizer (unk = bos = eos = "<|endoftext|>", no pad, no BOS added)."""
    from conftest import _training_texts

    from rephraser.testing.models import build_tiny_llama
    from rephraser.testing.tokenizers import build_gpt2_style_tokenizer

    tokenizer = build_gpt2_style_tokenizer(_training_texts(), tmp_path_factory.mktemp("gpt2-tok"))
    return build_tiny_llama(tokenizer, tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(params=["bpe", "gpt2"])
def contract_model(request, tiny_llama, tiny_gpt2):
    return tiny_llama if request.param == "bpe" else tiny_gpt2


@pytest.fixture(params=["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def lm(request, contract_model):
    return make_lm(request.param, contract_model)


def test_the_gpt2_style_tokenizer_maps_an_ordinary_string_to_the_eos_id(tiny_gpt2):
    """The convention the contract tests run on: what made rephraser-hf drop every stop string."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    assert tok.unk_token_id == tok.bos_token_id == tok.eos_token_id and tok.pad_token_id is None
    assert tok.convert_tokens_to_ids("Question:") == tok.eos_token_id
    assert tok("x")["input_ids"][0] != tok.bos_token_id  # no BOS added


def free_text(lm, prompt, n=24):
    """The backend's unconstrained greedy continuation (no stop can hit)."""
    return lm.generate_until(
        [instance(prompt, {"until": [NEVER], "max_gen_toks": n, "do_sample": False})], disable_tqdm=True
    )[0]


def test_continuation_equals_transformers_greedy(lm, contract_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(contract_model)
    model = AutoModelForCausalLM.from_pretrained(contract_model).eval()
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


def test_any_order_and_batch_size_give_the_same_text_as_one_at_a_time(lm, contract_model):
    kinds = [
        {"until": ["\n"], "max_gen_toks": 20},
        {"until": [".", "Question:"], "max_gen_toks": 12},
        {"until": [NEVER], "max_gen_toks": 5},
    ]
    requests = [instance(p, kinds[i % 3], idx=i) for i, p in enumerate(PROMPTS * 3)]
    reference = make_lm("hf", contract_model, batch_size=1).generate_until(requests, disable_tqdm=True)
    order = list(range(len(requests)))
    random.Random(0).shuffle(order)
    shuffled = lm.generate_until([requests[i] for i in order], disable_tqdm=True)
    assert [shuffled[order.index(i)] for i in range(len(requests))] == reference
    assert make_lm("lm_eval_hf", contract_model, batch_size=1).generate_until(requests, disable_tqdm=True) == reference


def test_long_contexts_are_left_truncated_and_eos_never_leaks(lm):
    long_prompt = "Question: " + "the number one and the number two " * 60 + "\nAnswer:"
    assert len(lm.tok_encode(long_prompt)) > MAX_LEN
    out = lm.generate_until([instance(long_prompt, {"until": [NEVER], "max_gen_toks": 8})], disable_tqdm=True)[0]
    assert len(lm.tok_encode(out, add_special_tokens=False)) <= 8
    assert lm.tokenizer.eos_token not in out


def test_loglikelihood_matches_lm_eval_hf(lm, contract_model):
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
    ref = make_lm("lm_eval_hf", contract_model, batch_size=1).loglikelihood(requests, disable_tqdm=True)
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
    requests += sampled_repeats(PROMPTS[:2], repeats=2)
    one = RephraserVLLM(pretrained=str(tiny_llama), dtype="float32", max_model_len=MAX_LEN).generate_until(
        requests, disable_tqdm=True
    )
    two = RephraserVLLM(pretrained=str(tiny_llama), dtype="float32", max_model_len=MAX_LEN, data_parallel_size=2)
    assert two.generate_until(requests, disable_tqdm=True) == one
    assert one[-4] != one[-3] and one[-2] != one[-1]  # the repeats are independent samples


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


# ---------------------------------------------------------------- generation settings: as lm-eval's `hf` applies them


def test_a_max_gen_toks_alias_counts_as_in_lm_eval_hf(lm, contract_model):
    """max_new_tokens (HF's name; also max_tokens, max_completion_tokens) is lm-eval's max_gen_toks, not ignored."""
    requests = [instance(p, {"until": [NEVER], "max_new_tokens": 5}) for p in PROMPTS[:3]]
    reference = make_lm("lm_eval_hf", contract_model).generate_until(requests, disable_tqdm=True)
    five = [instance(p, {"until": [NEVER], "max_gen_toks": 5}) for p in PROMPTS[:3]]
    assert make_lm("lm_eval_hf", contract_model).generate_until(five, disable_tqdm=True) == reference
    assert lm.generate_until(requests, disable_tqdm=True) == reference


def test_no_room_left_for_the_prompt_is_refused(lm):
    from rephraser.errors import ConfigError

    with pytest.raises(ConfigError, match=f"max_gen_toks={MAX_LEN} leaves no room for the prompt"):
        lm.generate_until([instance(PROMPTS[0], {"until": [NEVER], "max_gen_toks": MAX_LEN})], disable_tqdm=True)


def plain_and_with(setting: dict, n: int = 32) -> tuple[list, list]:
    plain = [instance(p, {"until": [NEVER], "max_gen_toks": n}, idx=i) for i, p in enumerate(PROMPTS[:3])]
    return plain, [
        instance(p, {"until": [NEVER], "max_gen_toks": n, **setting}, idx=i) for i, p in enumerate(PROMPTS[:3])
    ]


@pytest.mark.parametrize(
    "setting", [{"num_beams": 2}, {"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}], ids=lambda s: next(iter(s))
)
def test_rephraser_hf_runs_settings_outside_its_greedy_loop_as_lm_eval_hf(tiny_llama, setting):
    plain, requests = plain_and_with(setting)
    reference = make_lm("lm_eval_hf", tiny_llama).generate_until(requests, disable_tqdm=True)
    assert reference != make_lm("lm_eval_hf", tiny_llama).generate_until(plain, disable_tqdm=True)  # it matters
    assert make_lm("hf", tiny_llama).generate_until(requests, disable_tqdm=True) == reference


def test_rephraser_hf_greedy_loop_autocasts_as_hflm(tiny_llama):
    """mixed_precision_dtype: HFLM generates under autocast; the greedy loop must too (bf16 changes some tokens)."""
    from lm_eval.models.huggingface import HFLM

    from rephraser.models.hf import RephraserHFLM

    args = dict(pretrained=str(tiny_llama), dtype="float32", device="cpu", batch_size=1, max_length=MAX_LEN)
    requests = [instance(p, {"until": [NEVER], "max_gen_toks": 48}, idx=i) for i, p in enumerate(PROMPTS)]
    reference = HFLM(**args, mixed_precision_dtype="bfloat16").generate_until(requests, disable_tqdm=True)
    assert reference != make_lm("lm_eval_hf", tiny_llama, batch_size=1).generate_until(requests, disable_tqdm=True)
    ours = RephraserHFLM(**args, mixed_precision_dtype="bfloat16").generate_until(requests, disable_tqdm=True)
    assert ours == reference


@pytest.mark.vllm
def test_rephraser_vllm_applies_repetition_penalty_as_lm_eval_hf(tiny_llama):
    plain, requests = plain_and_with({"repetition_penalty": 1.3})
    reference = make_lm("lm_eval_hf", tiny_llama).generate_until(requests, disable_tqdm=True)
    assert reference != make_lm("lm_eval_hf", tiny_llama).generate_until(plain, disable_tqdm=True)
    assert make_lm("vllm", tiny_llama).generate_until(requests, disable_tqdm=True) == reference


@pytest.fixture(scope="session")
def tiny_penalised(tmp_path_factory, tiny_llama):
    """The tiny model with repetition_penalty=1.3 in its generation_config.json (HF generate applies it to greedy
    decoding too, as for models that ship one)."""
    import shutil

    from transformers import GenerationConfig

    out = tmp_path_factory.mktemp("tiny-penalised") / "model"
    shutil.copytree(tiny_llama, out)
    config = GenerationConfig.from_pretrained(out)
    config.repetition_penalty = 1.3
    config.save_pretrained(out)
    return out


@pytest.mark.parametrize("kind", ["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def test_the_models_generation_config_acts_as_in_lm_eval_hf(kind, tiny_penalised, tiny_llama):
    plain, _ = plain_and_with({})
    reference = make_lm("lm_eval_hf", tiny_penalised).generate_until(plain, disable_tqdm=True)
    assert reference != make_lm("lm_eval_hf", tiny_llama).generate_until(plain, disable_tqdm=True)
    assert make_lm(kind, tiny_penalised).generate_until(plain, disable_tqdm=True) == reference


@pytest.mark.vllm
@pytest.mark.parametrize(
    "setting, named",
    [
        ({"num_beams": 2}, "num_beams=2 has no equivalent in vLLM"),
        ({"no_repeat_ngram_size": 2}, "no_repeat_ngram_size=2 has no equivalent"),
        ({"n": 2}, "n=2 is not supported (n=1: one continuation per request is scored"),
        ({"stop": ["x"]}, "give stop strings as `until`"),
        ({"do_sample": True}, "do_sample=True needs a temperature > 0"),
    ],
)
def test_rephraser_vllm_refuses_what_it_cannot_honour(tiny_llama, setting, named):
    from rephraser.errors import ConfigError

    _, requests = plain_and_with(setting)
    with pytest.raises(ConfigError, match=re.escape(named)):
        make_lm("vllm", tiny_llama).generate_until(requests, disable_tqdm=True)


@pytest.mark.vllm
def test_rephraser_vllm_passes_its_own_settings_through(tiny_llama):
    """A SamplingParams field (presence_penalty) reaches vLLM; an HF one at its neutral value changes nothing."""
    lm = make_lm("vllm", tiny_llama)
    plain, penalised = plain_and_with({"presence_penalty": 1.5})
    free = lm.generate_until(plain, disable_tqdm=True)
    assert lm.generate_until(penalised, disable_tqdm=True) != free
    assert lm.generate_until(plain_and_with({"num_beams": 1, "no_repeat_ngram_size": 0})[1], disable_tqdm=True) == free


def sampled_repeats(prompts, repeats: int, setting=None) -> list:
    """lm-eval's `repeats`: each request listed `repeats` times, one after another."""
    kwargs = setting or {"until": [NEVER], "max_gen_toks": 8, "do_sample": True, "temperature": 1.0}
    return [instance(p, dict(kwargs), idx=i) for i, p in enumerate(prompts) for _ in range(repeats)]


@pytest.mark.vllm
def test_rephraser_vllm_samples_when_a_temperature_is_given_without_do_sample(tiny_llama):
    """lm-eval reads temperature > 0 with no do_sample as sampling (its hf backend samples); so must we."""
    lm = make_lm("vllm", tiny_llama)
    requests = sampled_repeats(PROMPTS[:1], 4, {"until": [NEVER], "max_gen_toks": 8, "temperature": 1.0})
    texts = lm.generate_until(requests, disable_tqdm=True)
    assert len(set(texts)) > 1
    assert lm.generate_until(requests, disable_tqdm=True) == texts  # per-request seeds: reproducible


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_data_parallel_ranks_sample_repeats_independently(tiny_llama, monkeypatch):
    """Two real data-parallel engines (spawned processes; on CPU here, where __init__ refuses data parallelism,
    hence the patched check). The repeats of a prompt land on different ranks, whose engines have the same seed:
    their samples must still differ, and equal one engine's."""
    import rephraser.models.vllm as backend

    requests = sampled_repeats(PROMPTS[:2], repeats=2)
    one = make_lm("vllm", tiny_llama).generate_until(requests, disable_tqdm=True)
    monkeypatch.setattr(backend, "check_data_parallel", lambda *_: None)
    two = backend.RephraserVLLM(
        pretrained=str(tiny_llama), dtype="float32", max_model_len=MAX_LEN, enforce_eager=True, data_parallel_size=2
    ).generate_until(requests, disable_tqdm=True)
    assert two[0] != two[1] and two[2] != two[3]
    assert two == one


# ---------------------------------------------------------------- the settings, one table each (no model)


@pytest.mark.parametrize(
    "gen_kwargs, until, max_gen_toks, kwargs",
    [
        ({"until": ["Q:"], "max_gen_toks": 7}, ["Q:", "</s>"], 7, {"do_sample": False}),
        ({"until": "Q:", "max_new_tokens": 5}, ["Q:", "</s>"], 5, {"do_sample": False}),
        ({"max_tokens": 4}, ["</s>"], 4, {"do_sample": False}),
        ({"until": ["Q:", "</s>"]}, ["Q:", "</s>"], 256, {"do_sample": False}),  # the EOS text is not doubled
        ({"temperature": 0.7}, ["</s>"], 256, {"do_sample": True, "temperature": 0.7}),
        ({"do_sample": False, "temperature": 0.7}, ["</s>"], 256, {"do_sample": False, "temperature": 0.0}),
        ({"num_beams": 2}, ["</s>"], 256, {"do_sample": False, "num_beams": 2}),
    ],
)
def test_request_settings_read_as_lm_eval_reads_them(gen_kwargs, until, max_gen_toks, kwargs):
    from rephraser.models.settings import request_settings

    settings = request_settings(gen_kwargs, 256, "</s>")
    assert (settings.until, settings.max_gen_toks, settings.kwargs) == (until, max_gen_toks, kwargs)


def generation_config(**fields):
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=1, eos_token_id=[2, 5], pad_token_id=3, **fields)


GREEDY = {"do_sample": False, "temperature": 0.0}


@pytest.mark.parametrize(
    "kwargs, config, refusal",
    [
        (GREEDY, {}, None),
        (GREEDY, {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20}, None),  # sampling defaults
        ({**GREEDY, "num_beams": 1, "repetition_penalty": 1.0}, {}, None),
        ({**GREEDY, "top_p": 0.5}, {}, None),  # HF ignores top_p when it does not sample
        ({"do_sample": True, "temperature": 0.7}, {}, "do_sample=True"),
        ({**GREEDY, "num_beams": 2}, {}, "num_beams=2"),
        ({**GREEDY, "repetition_penalty": 1.3}, {}, "repetition_penalty=1.3"),
        ({**GREEDY, "max_length": 50}, {}, "max_length=50"),
        ({**GREEDY, "eos_token_id": 9}, {}, "eos_token_id=9"),  # the request's own EOS replaces the model's in HF
        (GREEDY, {"repetition_penalty": 1.1}, "generation_config.json repetition_penalty=1.1"),
        (GREEDY, {"max_new_tokens": 64}, "generation_config.json max_new_tokens=64"),  # HF lets it win
        (GREEDY, {"suppress_tokens": [7]}, "generation_config.json suppress_tokens=[7]"),
        ({**GREEDY, "repetition_penalty": 1.0}, {"repetition_penalty": 1.1}, None),  # the request wins
    ],
)
def test_greedy_loop_refusal(kwargs, config, refusal):
    from rephraser.models.settings import greedy_loop_refusal

    assert greedy_loop_refusal(kwargs, generation_config(**config)) == refusal


VLLM_FIELDS = {"n", "temperature", "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids", "repetition_penalty"}
VLLM_FIELDS |= {"presence_penalty", "frequency_penalty", "min_tokens", "ignore_eos", "detokenize", "logprobs"}
VLLM_FIELDS |= {"include_stop_str_in_output", "skip_special_tokens", "_eos_token_id"}


@pytest.mark.parametrize(
    "kwargs, config, expected",
    [
        (GREEDY, {}, {"temperature": 0.0}),
        (GREEDY, {"do_sample": True, "temperature": 0.6, "top_p": 0.9}, {"temperature": 0.0}),
        (GREEDY, {"repetition_penalty": 1.1}, {"temperature": 0.0, "repetition_penalty": 1.1}),
        (
            {**GREEDY, "repetition_penalty": 1.3},
            {"repetition_penalty": 1.1},
            {"temperature": 0.0, "repetition_penalty": 1.3},
        ),
        ({**GREEDY, "presence_penalty": 0.5, "num_beams": 1}, {}, {"temperature": 0.0, "presence_penalty": 0.5}),
        ({"do_sample": True, "temperature": 0.8}, {}, {"temperature": 0.8, "top_k": 50, "top_p": 1.0}),  # HF's top_k
        (
            {"do_sample": True, "temperature": 0.8, "top_k": 0},
            {"top_p": 0.9},
            {"temperature": 0.8, "top_k": 0, "top_p": 0.9},
        ),
        (
            {"do_sample": True, "temperature": 0.8, "seed": 7},
            {},
            {"temperature": 0.8, "top_k": 50, "top_p": 1.0, "seed": 7},
        ),
        (
            GREEDY,
            {"max_new_tokens": 64},
            {"temperature": 0.0},
        ),  # max_gen_toks is used, as lm-eval's vllm does (a warning says so)
    ],
)
def test_vllm_sampling_kwargs(kwargs, config, expected):
    from rephraser.models.settings import vllm_sampling_kwargs

    assert vllm_sampling_kwargs(kwargs, generation_config(**config), VLLM_FIELDS) == expected


@pytest.mark.parametrize(
    "kwargs, config, named",
    [
        ({**GREEDY, "num_beams": 2}, {}, "num_beams=2"),
        (GREEDY, {"num_beams": 4}, "generation_config.json num_beams=4"),
        ({**GREEDY, "min_new_tokens": 3}, {}, "min_new_tokens=3"),  # vLLM's min_tokens also holds back stop strings
        ({**GREEDY, "_eos_token_id": 3}, {}, "_eos_token_id=3"),
        ({**GREEDY, "ignore_eos": True}, {}, "ignore_eos=True"),
        ({**GREEDY, "detokenize": False}, {}, "detokenize=False"),
        ({"do_sample": True, "temperature": 0.0}, {}, "do_sample=True needs a temperature > 0"),
    ],
)
def test_vllm_sampling_kwargs_refuses(kwargs, config, named):
    from rephraser.errors import ConfigError
    from rephraser.models.settings import vllm_sampling_kwargs

    with pytest.raises(ConfigError, match=re.escape(named)):
        vllm_sampling_kwargs(kwargs, generation_config(**config), VLLM_FIELDS)


def test_hf_sampling_defaults_are_transformers_own():
    from transformers import GenerationConfig

    from rephraser.models.settings import HF_SAMPLING_DEFAULTS

    defaults = GenerationConfig._get_default_generation_params()
    assert {k: defaults[k] for k in HF_SAMPLING_DEFAULTS} == HF_SAMPLING_DEFAULTS


def test_request_seeds_are_distinct_reproducible_and_fit_int64():
    from rephraser.models.settings import request_seed

    seeds = [request_seed(1234, i) for i in range(10_000)]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    assert seeds[:3] == [request_seed(1234, i) for i in range(3)]
    assert request_seed(1235, 0) not in seeds  # another base: other streams (not base + index)


def test_models_package_has_no_import_cycle():
    """Every import between rephraser.models modules, at any depth of the code (function-level ones too)."""
    import ast

    import rephraser.models

    folder = Path(rephraser.models.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        graph[path.stem] = {n.removeprefix("rephraser.models.") for n in names if n.startswith("rephraser.models.")}

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []
