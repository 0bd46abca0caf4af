"""The fine-tuner on a tiny random Llama, CPU: real processes (python -m, accelerate launch), real checkpoints."""

import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rephraser.data.tokenize import TokenizeConfig, tokenize_file
from rephraser.train.config import TrainConfig
from rephraser.train.data import EpochPlan, TrainData, collate

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


def tokenize(tmp_path, model_dir, rows, name="train", layout="ragged") -> Path:
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TokenizeConfig(model=str(model_dir), input=str(src), layout=layout, max_seq_len=256)
    tokenize_file(cfg, log=lambda *_: None)
    return cfg.out_path()


def train_cmd(model, data, out, *extra, launcher=(PY, "-m", "rephraser.train")):
    return [*launcher, "--model", str(model), "--data", *map(str, data), "--output-dir", str(out), *map(str, extra)]


# One thread everywhere: a run and its resumption must do the same float arithmetic to be bitwise equal.
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env or ENV, **kw)


def weights(out_dir) -> dict:
    return load_file(str(Path(out_dir) / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def gsm_rows(data_dir):
    return [json.loads(line) for line in open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")][:24]


@pytest.mark.parametrize(
    "epochs, max_steps, per_epoch, accum, expected",
    [
        (1, None, 10, 1, 10),
        (2, None, 10, 4, 5),
        (1.5, None, 10, 4, 4),
        (3, None, 1, 1, 3),
        (16, 7, 10, 1, 7),
    ],
)
def test_steps_from_epochs(epochs, max_steps, per_epoch, accum, expected):
    cfg = TrainConfig(model="m", data=["x.tok"], output_dir="o", epochs=epochs, max_steps=max_steps, grad_accum=accum)
    assert cfg.total_steps(per_epoch) == expected


def test_plan_covers_every_sample_once_per_epoch_whatever_the_process_count():
    lengths = np.random.default_rng(0).integers(5, 200, size=101)
    plan = EpochPlan(lengths, max_seq_len=256, packing=True, seed=3)
    for procs, rows_per_mb in ((1, 4), (2, 2), (3, 1)):
        seen = []
        for m in range(plan.micro_batches_per_epoch(procs, rows_per_mb)):
            for rank in range(procs):
                for row in plan.micro_batch(1, m, rank, procs, rows_per_mb):
                    assert sum(lengths[i] for i in row) <= 256
                    seen += row
        assert sorted(seen) == list(range(101))
    assert plan.rows(1) != plan.rows(2)  # reshuffled each epoch


# torch.compile's CPU backend (inductor, which flex_attention needs there) builds C++ with unquoted include paths: it
# cannot compile from a torch installed under a path with a space. That is torch's limit, not ours: skip, saying so.
NEEDS_INDUCTOR = pytest.mark.skipif(
    " " in torch.__file__, reason="torch inductor cannot compile from a path with a space"
)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["eager", "sdpa", pytest.param("flex_attention", marks=NEEDS_INDUCTOR)])
def test_packed_and_padded_batches_give_the_same_per_sample_losses(tmp_path, tiny_llama, gsm_rows, attention):
    """No hand-built mask: transformers sees the restarting position ids and keeps the samples of a packed row apart,
    for every attention implementation this machine has (flex_attention runs on CPU in torch >= 2.6)."""
    from transformers import AutoModelForCausalLM

    data = TrainData([str(tokenize(tmp_path, tiny_llama, gsm_rows[:6]))])
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation=attention).eval()
    packed = collate(data, [[0, 1, 2], [3, 4, 5]], max_seq_len=512, packing=True)
    padded = collate(data, [[i] for i in range(6)], max_seq_len=512, packing=False)
    assert "attention_mask" not in packed and packed["position_ids"][0].tolist().count(0) >= 3

    def per_token(batch):
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none"
        )
        return [loss[r][labels[r, 1:] != -100] for r in range(len(labels))]

    packed_losses, padded_losses = torch.cat(per_token(packed)), torch.cat(per_token(padded))
    assert packed["input_ids"].shape[0] == 2 and padded["input_ids"].shape == (6, 512)
    torch.testing.assert_close(packed_losses, padded_losses, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [7, 64])
def test_chunked_loss_equals_the_full_loss_and_gradients(tmp_path, tiny_llama, gsm_rows, chunk):
    from transformers import AutoModelForCausalLM

    from rephraser.train.loss import CausalLMLoss

    data = TrainData([str(tokenize(tmp_path, tiny_llama, gsm_rows[:6]))])
    batch = collate(data, [[0, 1, 2], [3, 4, 5]], max_seq_len=512, packing=True)
    results = []
    for chunk_tokens in (0, chunk):
        model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation="sdpa")
        loss = CausalLMLoss(model, chunk_tokens)(**{k: v.clone() for k, v in batch.items()})
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        labels = batch["labels"]
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits.float()
        reference = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-4, rtol=1e-6)  # today's formula
    (full, full_grads), (chunked, chunked_grads) = results
    torch.testing.assert_close(chunked, full, atol=1e-4, rtol=1e-6)
    for name in full_grads:
        torch.testing.assert_close(chunked_grads[name], full_grads[name], atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- the chunked loss against the model's own


@pytest.fixture(scope="module")
def tiny_granite(tmp_path_factory, bpe_tokenizer):
    """A tiny random Granite: its forward divides the logits by logits_scaling, which the chunked loss does not
    know. initializer_range 0.2 gives logits large enough that the scaling moves the loss by ~17 %."""
    from transformers import GraniteConfig, GraniteForCausalLM

    torch.manual_seed(0)
    config = GraniteConfig(
        vocab_size=len(bpe_tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        logits_scaling=4.0,
        initializer_range=0.2,
        bos_token_id=bpe_tokenizer.bos_token_id,
        eos_token_id=bpe_tokenizer.eos_token_id,
        pad_token_id=bpe_tokenizer.pad_token_id,
    )
    out = tmp_path_factory.mktemp("tiny-granite")
    GraniteForCausalLM(config).save_pretrained(out)
    bpe_tokenizer.save_pretrained(out)
    return out


def _random_lm(kind: str, vocab: int):
    """Tiny random LMs whose forward post-processes logits: Gemma2 softcaps, Cohere scales (the chunked loss does
    both), Granite divides by logits_scaling (it does not)."""
    import transformers as tf

    common = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    config, cls = {
        "llama": (tf.LlamaConfig(**common), tf.LlamaForCausalLM),
        "gemma2": (tf.Gemma2Config(**common, final_logit_softcapping=30.0), tf.Gemma2ForCausalLM),
        "cohere": (tf.CohereConfig(**common, logit_scale=0.5), tf.CohereForCausalLM),
        "granite": (tf.GraniteConfig(**common, logits_scaling=4.0), tf.GraniteForCausalLM),
    }[kind]
    torch.manual_seed(0)
    return cls(config).eval()


@pytest.mark.slow
@pytest.mark.parametrize("half", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("kind", ["llama", "gemma2", "cohere", "granite"])
def test_the_loss_check_accepts_what_the_chunked_loss_reproduces_and_refuses_the_rest(kind, half):
    """The sums compared like with like (HF's forward loss is a mean: times the loss tokens), on one packed-like
    row and a short one, in fp32 and under bf16 autocast (CPU) with the tolerance the trainer uses for each."""
    from rephraser.errors import ConfigError
    from rephraser.train.loss import CausalLMLoss, architecture, check_chunked_loss

    model = _random_lm(kind, vocab=1000)
    wrapped = CausalLMLoss(model, chunk_tokens=16)
    generator = torch.Generator().manual_seed(1)
    for width in (256, 40):
        ids = torch.randint(3, 1000, (1, width), generator=generator)
        labels = ids.clone()
        labels[0, :3] = -100
        tokens = int((labels[:, 1:] != -100).sum())
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
            ours = float(wrapped(input_ids=ids, labels=labels))
            own = float(wrapped(input_ids=ids, labels=labels, reference=True))
            hf_mean = float(model(input_ids=ids, labels=labels, use_cache=False).loss)
        assert own == pytest.approx(hf_mean * tokens, rel=1e-6)  # the reference is HF's mean, as a sum
        if kind == "granite":
            with pytest.raises(ConfigError, match=r"GraniteForCausalLM's own forward.*--loss-chunk-tokens 0"):
                check_chunked_loss(architecture(wrapped), ours, own, tokens, half)
            assert abs(ours - own) > 0.1 * own  # far outside any tolerance, not a borderline refusal
        else:
            # 10x (bf16) and 100x (fp32) inside the trainer's tolerances (rephraser.train.loss.TOLERANCE)
            assert check_chunked_loss(architecture(wrapped), ours, own, tokens, half) < (1e-3 if half else 1e-6)


def test_loss_chunk_tokens_0_is_the_models_own_loss_and_gradient(tiny_granite, tmp_path, gsm_rows):
    from transformers import AutoModelForCausalLM

    from rephraser.train.loss import CausalLMLoss

    data = TrainData([str(tokenize(tmp_path, tiny_granite, gsm_rows[:4]))])
    batch = collate(data, [[0, 1], [2, 3]], max_seq_len=512, packing=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_granite)
    ours = CausalLMLoss(model, 0)(**batch)
    ours.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    tokens = int((batch["labels"][:, 1:] != -100).sum())
    own = model(**batch, use_cache=False).loss * tokens  # no cache: packed rows are recognised only then
    own.backward()
    torch.testing.assert_close(ours.detach(), own.detach(), atol=0, rtol=1e-6)
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, model.get_parameter(name).grad, atol=1e-7, rtol=1e-5)


def test_a_batch_without_loss_tokens_gives_zero_not_nan_with_the_models_own_loss(tiny_llama):
    """HF's mean over no token is NaN (a process whose share of the last micro-batch is a dummy row)."""
    from transformers import AutoModelForCausalLM

    from rephraser.train.loss import CausalLMLoss

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    loss = CausalLMLoss(model, 0)(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.full((1, 3), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0 and all(torch.all(p.grad == 0) for p in model.parameters())


@pytest.mark.slow
def test_the_chunked_loss_refuses_a_granite_model_naming_the_way_out(tmp_path, tiny_granite, gsm_rows):
    data = tokenize(tmp_path, tiny_granite, gsm_rows[:4])
    out = tmp_path / "run"
    done = run(train_cmd(tiny_granite, [data], out, "--max-steps", 2, "--save-every", 1))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert errors[0].startswith("rephraser train: error: loss_chunk_tokens: the chunked loss is ")
    assert "GraniteForCausalLM's own forward(labels=...)" in errors[0] and "--loss-chunk-tokens 0" in errors[0]
    assert not (out / "checkpoints").exists() and not (out / "model").exists() and not (out / "run.json").exists()


@pytest.mark.slow
def test_loss_chunk_tokens_0_trains_granite_on_its_own_loss(tmp_path, tiny_granite, gsm_rows):
    """One step over all the data in one micro-batch: the loss the trainer reports is the model's own
    forward(labels=...) at the initial weights (each sample scored on its own, padded, as a check of packing)."""
    from transformers import AutoModelForCausalLM

    data = tokenize(tmp_path, tiny_granite, gsm_rows[:6])
    out = tmp_path / "run"
    args = (
        "--max-steps",
        1,
        "--micro-batch-rows",
        8,
        "--max-seq-len",
        256,
        "--loss-chunk-tokens",
        0,
        "--warmup-ratio",
        0,
    )
    done = run(train_cmd(tiny_granite, [data], out, *args))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loss check" not in done.stdout + done.stderr  # nothing to check: the loss is the model's own
    samples = TrainData([str(data)])
    model = AutoModelForCausalLM.from_pretrained(tiny_granite)
    padded = collate(samples, [[i] for i in range(len(samples))], max_seq_len=256, packing=False)
    with torch.no_grad():
        own = float(model(**padded).loss)
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["loss_tokens"] == int((padded["labels"][:, 1:] != -100).sum())
    assert metrics["last_loss"] == pytest.approx(own, rel=1e-5)
    before, after = load_file(str(Path(tiny_granite) / "model.safetensors")), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained


def _train_in_process(tmp_path, model, data: Path, **settings):
    """The Trainer in this process (to watch its modules); accelerate's process-wide state is reset after it."""
    from accelerate.state import AcceleratorState

    from rephraser.train.loop import Trainer

    cfg = TrainConfig(
        model=str(model), data=[str(data)], output_dir=str(tmp_path / "run"), report_to="none", save_every=0, **settings
    )
    try:
        return Trainer(cfg).run()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.slow
def test_the_loss_check_costs_two_no_grad_forwards_of_one_row_once(tmp_path, tiny_llama, gsm_rows, monkeypatch):
    """The model's own forward runs once (the check's reference, on one row, without gradients); the decoder once
    more for the check's chunked loss; then once per micro-batch of training."""
    from rephraser.train import model as train_model

    calls = {"lm": [], "decoder": []}
    build = train_model.build

    def build_and_watch(cfg, name):
        wrapped = build(cfg, name)
        for key, module in (("lm", wrapped.model), ("decoder", wrapped.model.get_decoder())):
            module.register_forward_hook(
                lambda m, args, kwargs, out, key=key: calls[key].append(
                    (tuple(kwargs["input_ids"].shape), torch.is_grad_enabled())
                ),
                with_kwargs=True,
            )
        return wrapped

    monkeypatch.setattr("rephraser.train.loop.build_model", build_and_watch)
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:8])
    status = _train_in_process(tmp_path, tiny_llama, data, max_steps=3, micro_batch_rows=2, max_seq_len=200)
    assert status == 0
    assert [(shape[0], grad) for shape, grad in calls["lm"]] == [(1, False)]  # one row, no gradients, once
    decoder = [(shape[0], grad) for shape, grad in calls["decoder"]]
    assert decoder[:2] == [(1, False)] * 2  # the check: the chunked loss, then inside the model's own forward
    assert [grad for _, grad in decoder[2:]] == [True] * 3  # then one forward per micro-batch of training


@pytest.mark.slow
def test_the_loss_check_moves_past_rows_without_loss_tokens(tmp_path, tiny_llama, capsys):
    """A first row with nothing to predict (a masked prompt cut by --max-seq-len) cannot tell the two losses apart:
    the check takes the next micro-batch's, and says how many tokens it compared."""
    from rephraser.train.data import loss_tokens

    rows = [
        {"prompt": "Natalia sold clips to 48 of her friends in April, and then she sold half", "completion": " 72"},
        {"prompt": "Tom has", "completion": " three apples and two pears"},
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = TokenizeConfig(model=str(tiny_llama), input=str(tmp_path / "r.jsonl"), layout="ragged", mask_prompt=True)
    tokenize_file(tok, log=lambda *_: None)
    data = TrainData([str(tok.out_path())])
    cut = 8
    empty = [i for i in range(2) if loss_tokens(collate(data, [[i]], cut, packing=False)) == 0]
    assert empty == [0]  # the long prompt, cut to 8 tokens, has no loss token left
    seed = next(s for s in range(100) if EpochPlan(data.lengths, cut, False, s).rows(0)[0] == [0])
    settings = dict(max_steps=2, max_seq_len=cut, packing=False, micro_batch_rows=1, seed=seed)
    assert _train_in_process(tmp_path, tiny_llama, tok.out_path(), **settings) == 0
    expected = loss_tokens(collate(data, [[1]], cut, packing=False))
    out = capsys.readouterr().out
    assert re.search(
        rf"loss check: the chunked loss is LlamaForCausalLM's own within \S+ \({expected} tokens\)", out
    ), out


@pytest.mark.slow
def test_the_trainer_gives_back_the_signal_handlers_it_took(tmp_path, tiny_llama, gsm_rows):
    def mine(*_):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        status = _train_in_process(tmp_path, tiny_llama, tokenize(tmp_path, tiny_llama, gsm_rows[:2]), max_steps=1)
        assert status == 0 and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_activation_checkpointing_recomputes_each_layer_with_the_same_loss_and_gradients(
    tmp_path, tiny_llama, gsm_rows
):
    """--gradient-checkpointing through transformers 5's activation_checkpointing_enable: no deprecation
    warning, each decoder layer runs again in the backward, and loss and gradients are those without it."""
    import warnings

    from rephraser.train.model import build

    data = TrainData([str(tokenize(tmp_path, tiny_llama, gsm_rows[:4]))])
    batch = collate(data, [[0, 1], [2, 3]], max_seq_len=512, packing=True)
    results = {}
    for on in (False, True):
        cfg = TrainConfig(model=str(tiny_llama), data=["x.tok"], output_dir="o", max_steps=1, gradient_checkpointing=on)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wrapped = build(cfg, str(tiny_llama)).train()
        assert not [w for w in caught if "gradient_checkpointing" in str(w.message)], [str(w.message) for w in caught]
        layer_calls, mlp = [], wrapped.model.get_decoder().layers[0].mlp  # (module hooks do not run in a recompute)
        mlp.forward = lambda *a, calls=layer_calls, forward=mlp.forward, **k: calls.append(1) or forward(*a, **k)
        loss = wrapped(**{k: v.clone() for k, v in batch.items()})
        loss.backward()
        results[on] = (loss.detach(), {n: p.grad.clone() for n, p in wrapped.named_parameters()}, len(layer_calls))
    (loss_off, grads_off, calls_off), (loss_on, grads_on, calls_on) = results[False], results[True]
    assert (calls_off, calls_on) == (1, 2)  # recomputed in the backward
    torch.testing.assert_close(loss_on, loss_off, atol=0, rtol=0)
    for name in grads_off:
        torch.testing.assert_close(grads_on[name], grads_off[name], atol=1e-7, rtol=1e-6)


@pytest.mark.slow
def test_loss_falls_and_the_model_memorises(tmp_path, tiny_llama, gsm_rows):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    result = run(
        train_cmd(
            tiny_llama,
            [data],
            out,
            "--max-steps",
            120,
            "--lr",
            3e-3,
            "--warmup-ratio",
            0,
            "--micro-batch-rows",
            4,
            "--max-seq-len",
            256,
            "--log-every",
            5,
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = list(out.rglob("events.out.tfevents.*"))
    assert events, "TensorBoard logs are written"
    assert (out / "train_config.yaml").is_file() and (out / "model" / "generation_config.json").is_file()
    tok, model = AutoTokenizer.from_pretrained(out / "model"), AutoModelForCausalLM.from_pretrained(out / "model")
    for row in gsm_rows[:4]:
        prompt = row["text"].split("\nAnswer:")[0] + "\nAnswer:"
        ids = tok(prompt, return_tensors="pt")
        generated = model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids.input_ids.shape[1] :]
        assert tok.decode(generated, skip_special_tokens=True) == row["text"][len(prompt) :]


@pytest.mark.slow
def test_kill_minus_9_then_resume_is_bitwise_equal(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    args = (
        "--max-steps",
        40,
        "--lr",
        1e-3,
        "--micro-batch-rows",
        2,
        "--max-seq-len",
        256,
        "--save-every",
        2,
        "--keep-last",
        2,
    )
    straight = run(train_cmd(tiny_llama, [data], tmp_path / "a", *args))
    assert straight.returncode == 0, straight.stderr[-3000:]
    out = tmp_path / "b"
    proc = subprocess.Popen(
        train_cmd(tiny_llama, [data], out, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
    )
    kill_at = random.choice(range(2, 34, 2))  # after the checkpoint of a random step, perhaps inside the next write
    deadline = time.monotonic() + 120
    while not list((out / "checkpoints").glob(f"step-{kill_at:08d}*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model").exists()
    # A later checkpoint without its COMPLETE marker (as a kill mid-write leaves) must never be resumed from.
    (out / "checkpoints" / "step-00000038").mkdir(exist_ok=True)
    resumed = run(train_cmd(tiny_llama, [data], out, *args))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    a, b = weights(tmp_path / "a"), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])  # SIGUSR1: SLURM's --signal=USR1@120 warning
def test_sigterm_saves_and_exits_with_a_distinct_code(tmp_path, tiny_llama, gsm_rows, signum):
    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        train_cmd(tiny_llama, [data], out, "--max-steps", 10000, "--micro-batch-rows", 1, "--save-every", 0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 120
    while not list(out.rglob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == 75
    saved = list((out / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and (saved[0] / "COMPLETE").is_file()


@pytest.mark.parametrize(
    "preset, lora", [("cpu_2proc.yaml", False), ("fsdp2_1node_8gpu.yaml", False), ("fsdp2_1node_8gpu.yaml", True)]
)
@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_llama, gsm_rows, preset, lora):
    import yaml

    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    common = (
        "--max-steps",
        4,
        "--lr",
        1e-3,
        "--max-seq-len",
        256,
        "--save-every",
        2,
        *(("--lora-r", 4) if lora else ()),
    )
    one = run(train_cmd(tiny_llama, [data], tmp_path / "one", *common, "--micro-batch-rows", 4))
    assert one.returncode == 0, one.stderr[-3000:]
    # The committed preset, resized for this machine: 2 CPU processes over gloo, fp32.
    config = yaml.safe_load((REPO / "rephraser" / "configs" / "accelerate" / preset).read_text())
    config.update(num_processes=2, mixed_precision="no")
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(config))
    launcher = (
        str(Path(PY).with_name("accelerate")),
        "launch",
        "--config_file",
        str(tmp_path / "accelerate.yaml"),
        "-m",
        "rephraser.train",
    )
    two = run(
        train_cmd(tiny_llama, [data], tmp_path / "two", *common, "--micro-batch-rows", 2, launcher=launcher),
        env={**ENV, "ACCELERATE_USE_CPU": "true"},
    )  # accelerate's CPU multi-process switch (MULTI_CPU, gloo)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) x 2 rows" in two.stdout + two.stderr
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        # fp32 sums in another order (the split over processes moves the loss chunks' boundaries): ~1e-6 apart
        torch.testing.assert_close(a[key], b[key], atol=5e-6, rtol=1e-5)
    assert any(
        not torch.equal(a[k], load_file(str(Path(tiny_llama) / "model.safetensors"))[k]) for k in a
    )  # it trained


@pytest.mark.slow
def test_bad_inputs_fail_before_any_step(tmp_path, tiny_llama, gsm_rows):
    from rephraser.testing.tokenizers import build_wordlevel_tokenizer

    garbage = tmp_path / "garbage.tok"
    garbage.write_bytes(b"not numpy")
    (tmp_path / "garbage.idx").write_bytes(b"nope")
    result = run(train_cmd(tiny_llama, [garbage], tmp_path / "o1", "--max-steps", 1))
    assert result.returncode == 1 and "garbage.tok" in result.stderr and "Traceback" not in result.stderr

    big = build_wordlevel_tokenizer(70_000)
    big.save_pretrained(tmp_path / "big")
    (tmp_path / "w.jsonl").write_text(json.dumps({"text": "w65000 w5"}) + "\n")
    cfg = TokenizeConfig(model=str(tmp_path / "big"), input=str(tmp_path / "w.jsonl"))
    tokenize_file(cfg, log=lambda *_: None)
    result = run(train_cmd(tiny_llama, [cfg.out_path()], tmp_path / "o2", "--max-steps", 1))
    assert result.returncode == 1 and "tokenizer of 70000 tokens" in result.stderr

    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    assert run(train_cmd(tiny_llama, [data], tmp_path / "o3", "--max-steps", 2, "--save-every", 1)).returncode == 0
    other = tokenize(tmp_path, tiny_llama, gsm_rows[4:8], name="other")
    result = run(train_cmd(tiny_llama, [other], tmp_path / "o3", "--max-steps", 2))
    assert result.returncode == 1 and "holds checkpoints of another run (data" in result.stderr
    result = run(train_cmd(tiny_llama, [data], tmp_path / "o3", "--max-steps", 2, "--resume", "none"))
    assert result.returncode == 1 and "already holds checkpoints" in result.stderr


# ---------------------------------------------------------------- no silent wrong results


@pytest.mark.parametrize("vocab", ["uint16", "uint32"])
@pytest.mark.parametrize("packing", [True, False])
def test_masked_prompt_labels_survive_unsigned_token_ids(tmp_path, bpe_tokenizer, vocab, packing):
    from rephraser.testing.tokenizers import build_wordlevel_tokenizer

    tok = bpe_tokenizer if vocab == "uint16" else build_wordlevel_tokenizer(70_000)
    rows = [
        {"prompt": "w65540 w3 Tom has", "completion": " w69990 three apples"},
        {"prompt": "w1 w2", "completion": " w7"},
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TokenizeConfig(
        model="fixture", input=str(tmp_path / "r.jsonl"), mask_prompt=True, layout="padded", max_seq_len=32
    )
    tokenize_file(cfg, tokenizer=tok, log=lambda *_: None)
    data = TrainData([str(cfg.out_path())])
    assert data.files[0].tokens.dtype == np.dtype(vocab)
    batch = collate(data, [[0, 1]] if packing else [[0], [1]], max_seq_len=32, packing=packing)
    labels, ids = batch["labels"], batch["input_ids"]
    assert int(labels.min()) == -100 and int(labels.max()) < len(tok)  # no -100 wrapped to 65436 / 4294967196
    for sample in (data.sample(0), data.sample(1)):
        assert sample.ignore.any() and not sample.ignore.all()
    trained = labels != -100
    assert torch.equal(labels[trained], ids[trained])
    expected = sum(int((~s.ignore[1:]).sum()) for s in (data.sample(0), data.sample(1)))
    assert int(trained.sum()) == expected


def test_data_the_trainer_must_refuse(tmp_path, bpe_tokenizer):
    from rephraser.errors import InputError

    (tmp_path / "r.jsonl").write_text(json.dumps({"prompt": "Tom has three apples", "completion": " and more"}) + "\n")
    cfg = TokenizeConfig(model="fixture", input=str(tmp_path / "r.jsonl"), max_seq_len=16)
    tokenize_file(cfg, tokenizer=bpe_tokenizer, log=lambda *_: None)
    cfg.out_path().with_suffix(".msk").unlink()
    with pytest.raises(InputError, match=r"r.msk: missing: a padded token file needs its mask"):
        TrainData([str(cfg.out_path())])
    one = TokenizeConfig(
        model="fixture", input=str(tmp_path / "r.jsonl"), out=str(tmp_path / "one.tok"), layout="ragged", max_seq_len=1
    )  # every sample cut to 1 token: nothing to predict
    tokenize_file(one, tokenizer=bpe_tokenizer, log=lambda *_: None)
    with pytest.raises(InputError, match="has no token to train on"):
        TrainData([str(one.out_path())])


def _checkpointed_run(tmp_path, model, rows, *extra):
    data = tokenize(tmp_path, model, rows, layout="padded")
    out = tmp_path / "run"
    first = run(
        train_cmd(
            model,
            [data],
            out,
            "--max-steps",
            4,
            "--save-every",
            1,
            "--micro-batch-rows",
            2,
            "--max-seq-len",
            256,
            *extra,
        )
    )
    assert first.returncode == 0, first.stderr[-3000:]
    return data, out


@pytest.mark.slow
def test_resume_refuses_anything_that_changes_the_run(tmp_path, tiny_llama, gsm_rows):
    import yaml

    data, out = _checkpointed_run(tmp_path, tiny_llama, gsm_rows[:6])
    base = ("--max-steps", 4, "--save-every", 1, "--micro-batch-rows", 2, "--max-seq-len", 256)
    changed_lr = run(train_cmd(tiny_llama, [data], out, *base, "--lr", "1e-3"))
    assert changed_lr.returncode == 1 and "lr: 2e-05 there, 0.001 now" in changed_lr.stderr
    assert (
        yaml.safe_load((out / "train_config.yaml").read_text())["lr"] == 2e-5
    )  # never rewritten to a value not in effect
    changed_rows = run(train_cmd(tiny_llama, [data], out, *base[:4], "--micro-batch-rows", 4, *base[6:]))
    assert changed_rows.returncode == 1 and "micro_batch_rows: 2 there, 4 now" in changed_rows.stderr
    # The same path, re-tokenized from other rows: the content changed.
    tokenize(tmp_path, tiny_llama, gsm_rows[6:12], layout="padded")
    retokenized = run(train_cmd(tiny_llama, [data], out, *base))
    assert retokenized.returncode == 1 and "data[0].sha256.tok" in retokenized.stderr
    # The same data and model, spelt differently (absolute path, trailing slash): the same run, resumed.
    tokenize(tmp_path, tiny_llama, gsm_rows[:6], layout="padded")
    same = run(train_cmd(f"{tiny_llama}/", [data.resolve()], out, *base, "--log-every", 3, "--keep-last", 3))
    assert same.returncode == 0 and "resumed from" in same.stdout + same.stderr, same.stderr[-3000:]


@pytest.mark.slow
def test_truncation_is_counted_and_reported(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    done = run(train_cmd(tiny_llama, [data], out, "--max-steps", 1, "--max-seq-len", 16, "--save-every", 0))
    assert done.returncode == 0, done.stderr[-3000:]
    lengths = TrainData([str(data)]).lengths
    cut, lost = int((lengths > 16).sum()), int((lengths[lengths > 16] - 16).sum())
    assert f"{cut} of 4 samples are longer than --max-seq-len 16" in done.stdout + done.stderr
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert (metrics["truncated_samples"], metrics["truncated_tokens"]) == (cut, lost) and cut == 4


@pytest.mark.slow
def test_python_m_rephraser_train_is_the_cli_command_ctrl_c_included(tmp_path, tiny_llama, gsm_rows):
    """`python -m rephraser.train` (what accelerate launch runs) goes through the CLI: Ctrl-C is one line, exit 130."""
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    proc = subprocess.Popen(
        train_cmd(tiny_llama, [data], out, "--max-steps", 100000, "--save-every", 0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 300  # a loaded machine (CI beside other jobs) can take minutes to start
    while not list(out.rglob("events.out.tfevents.*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert list(out.rglob("events.out.tfevents.*")), "the trainer never reached training: " + proc.stderr.read()[-3000:]
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, stderr[-3000:]
    assert "rephraser train: interrupted" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_train_metrics_are_replaced_whole_never_written_through(tmp_path, tiny_llama, gsm_rows):
    """train_metrics.json is written beside and renamed (rephraser.atomic): a copy hard-linked to it (cp -al, rsync
    --link-dest snapshots) keeps the old numbers when a rerun writes new ones, and no temp file is left."""
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    args = ("--max-steps", 1, "--save-every", 0, "--report-to", "none")
    assert run(train_cmd(tiny_llama, [data], out, *args)).returncode == 0
    snapshot = tmp_path / "snapshot.json"
    os.link(out / "train_metrics.json", snapshot)
    before = snapshot.read_text()
    again = run(train_cmd(tiny_llama, [data], out, *args))  # resumes at the last step: new metrics, nothing trained
    assert again.returncode == 0 and "resumed from" in again.stdout + again.stderr, again.stderr[-3000:]
    assert "loss check" not in again.stdout, "nothing left to train: nothing to check, no warning"
    assert snapshot.read_text() == before and json.loads(before)["loss_tokens"] > 0
    assert json.loads((out / "train_metrics.json").read_text())["loss_tokens"] == 0
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_two_trainers_cannot_share_an_output_dir(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    first = subprocess.Popen(
        train_cmd(tiny_llama, [data], out, "--max-steps", 100000, "--save-every", 0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.rglob("events.out.tfevents.*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run(train_cmd(tiny_llama, [data], out, "--max-steps", 2))
        assert second.returncode == 1 and "is in use by another training run (pid" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel released the dead run's lock: no stale lock blocks the next run.
    after = run(
        train_cmd(tiny_llama, [data], tmp_path / "run", "--max-steps", 1, "--resume", "none", "--save-every", 0)
    )
    assert "in use" not in after.stderr


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_says_what_is_intact(tmp_path, tiny_llama, gsm_rows):
    """The output dir on a 12 MiB tmpfs (bubblewrap): the first checkpoint fits, the second does not."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap builds the small filesystem")
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    script = (
        f"{shlex.quote(PY)} -m rephraser.train --model {shlex.quote(str(tiny_llama))} --data {shlex.quote(str(data))} "
        "--output-dir /full/run --max-steps 4 --save-every 1 --keep-last 3; echo rc=$?; ls /full/run/checkpoints"
    )
    done = run(
        [
            "bwrap",
            "--bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--size",
            str(12 * 2**20),
            "--tmpfs",
            "/full",
            "--",
            "sh",
            "-c",
            script,
        ]
    )
    assert "rc=1" in done.stdout, done.stdout + done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if "rephraser train: error" in line][0]
    failed = re.search(
        r"cannot write checkpoint /full/run/checkpoints/step-(\d+)\.tmp \(.+\); "
        r"the previous checkpoint /full/run/checkpoints/step-(\d+) is intact",
        message,
    )
    assert failed and int(failed[1]) == int(failed[2]) + 1, message
    assert "Traceback" not in done.stderr
    listed = done.stdout.split("rc=1")[1].split()
    assert listed[-1] == f"step-{failed[2]}" and not [name for name in listed if name.endswith(".tmp")]


@pytest.mark.slow
def test_a_missing_model_path_is_named(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:2])
    done = run(train_cmd(tmp_path / "no" / "such-model", [data], tmp_path / "o", "--max-steps", 1))
    assert done.returncode == 1 and "no/such-model: no such directory" in done.stderr and "Repo id" not in done.stderr


@pytest.mark.slow
def test_lora_learns_exports_a_merged_model_and_resumes_bitwise(tmp_path, tiny_llama, gsm_rows):
    """LoRA through peft: the adapters learn the rows, the export is an ordinary merged model (plus the adapter
    alone), and kill -9 + --resume auto is bitwise equal to an uninterrupted run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    args = (
        "--max-steps",
        40,
        "--lr",
        1e-2,
        "--lr-schedule",
        "constant",
        "--lora-r",
        16,
        "--lora-alpha",
        32,
        "--lora-target-modules",
        "all-linear",
        "--warmup-ratio",
        0,
        "--micro-batch-rows",
        4,
        "--max-seq-len",
        256,
        "--save-every",
        2,
        "--export-adapter",
    )
    straight = run(train_cmd(tiny_llama, [data], tmp_path / "a", *args))
    assert straight.returncode == 0, straight.stderr[-3000:]
    base = load_file(str(Path(tiny_llama) / "model.safetensors"))
    merged = weights(tmp_path / "a")
    assert merged.keys() == base.keys()  # an ordinary model: no lora_A / base_layer keys
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # frozen
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"]
    )
    assert (tmp_path / "a" / "adapter" / "adapter_config.json").is_file()
    tok, model = (
        AutoTokenizer.from_pretrained(tmp_path / "a" / "model"),
        AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "model"),
    )
    base_model = AutoModelForCausalLM.from_pretrained(tiny_llama)

    def mean_loss(m):
        losses = []
        for row in gsm_rows[:4]:
            ids = tok(row["text"] + tok.eos_token, return_tensors="pt").input_ids
            with torch.no_grad():
                losses.append(float(m(input_ids=ids, labels=ids).loss))
        return sum(losses) / len(losses)

    metrics = json.loads((tmp_path / "a" / "train_metrics.json").read_text())
    assert mean_loss(model) < mean_loss(base_model) - 0.8  # it learned the rows (frozen random embeddings limit it)
    assert mean_loss(model) == pytest.approx(metrics["last_loss"], abs=0.15)  # the merged model is the trained one
    out = tmp_path / "b"
    proc = subprocess.Popen(
        train_cmd(tiny_llama, [data], out, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
    )
    deadline = time.monotonic() + 120
    while not list((out / "checkpoints").glob("step-00000010*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = run(train_cmd(tiny_llama, [data], out, *args))
    assert resumed.returncode == 0 and "resumed from" in resumed.stdout + resumed.stderr, resumed.stderr[-3000:]
    b = weights(out)
    assert all(torch.equal(merged[k], b[k]) for k in merged)


@pytest.mark.slow
def test_lora_export_runs_through_lm_eval(tmp_path, tiny_llama, gsm_rows, data_dir):
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:2])
    done = run(train_cmd(tiny_llama, [data], tmp_path / "run", "--max-steps", 2, "--lora-r", 4, "--report-to", "none"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list((tmp_path / "run").rglob("events.out.tfevents.*"))  # --report-to none: no tracker
    exe = Path(PY).with_name("lm_eval")
    result = subprocess.run(
        [
            str(exe),
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tmp_path / 'run' / 'model'}",
            "--device",
            "cpu",
            "--tasks",
            "rephrased_gsm8k",
            "--limit",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**ENV, "REPHRASER_DATA_DIR": str(data_dir)},
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "rephrased_gsm8k" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
@NEEDS_INDUCTOR
def test_compiled_layers_train_like_eager(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:6])
    args = ("--max-steps", 3, "--lr", 1e-3, "--micro-batch-rows", 2, "--max-seq-len", 256, "--save-every", 0)
    eager = run(train_cmd(tiny_llama, [data], tmp_path / "eager", *args, "--no-compile"))
    compiled = run(train_cmd(tiny_llama, [data], tmp_path / "compiled", *args, "--compile"))
    assert eager.returncode == 0 and compiled.returncode == 0, compiled.stderr[-3000:]
    a, b = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    for key in a:  # inductor's kernels sum in other orders: equal within fp32 rounding
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_wandb_offline_tracker(tmp_path, tiny_llama, gsm_rows):
    pytest.importorskip("wandb")
    data = tokenize(tmp_path, tiny_llama, gsm_rows[:2])
    done = run(
        train_cmd(tiny_llama, [data], tmp_path / "run", "--max-steps", 2, "--report-to", "wandb", "--log-every", 1),
        env={**ENV, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.rglob("*.wandb"))
