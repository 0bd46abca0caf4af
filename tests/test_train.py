"""The fine-tuner on a tiny random Llama, CPU: real processes (python -m, accelerate launch), real checkpoints."""

import json
import os
import random
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
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env or ENV, **kw)


def weights(out_dir) -> dict:
    return load_file(str(Path(out_dir) / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def gsm_rows(data_dir):
    return [json.loads(line) for line in open(data_dir / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl")][:24]


@pytest.mark.parametrize("epochs, max_steps, per_epoch, accum, expected", [
    (1, None, 10, 1, 10), (2, None, 10, 4, 5), (1.5, None, 10, 4, 4), (3, None, 1, 1, 3), (16, 7, 10, 1, 7),
])
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


def test_packed_and_padded_batches_give_the_same_per_sample_losses(tmp_path, tiny_llama, gsm_rows):
    from transformers import AutoModelForCausalLM

    data = TrainData([str(tokenize(tmp_path, tiny_llama, gsm_rows[:6]))])
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation="sdpa").eval()
    packed = collate(data, [[0, 1, 2], [3, 4, 5]], max_seq_len=512, packing=True)
    padded = collate(data, [[i] for i in range(6)], max_seq_len=512, packing=False)

    def per_token(batch):
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
        return [loss[r][labels[r, 1:] != -100] for r in range(len(labels))]

    packed_losses, padded_losses = torch.cat(per_token(packed)), torch.cat(per_token(padded))
    assert packed["input_ids"].shape[0] == 2 and padded["input_ids"].shape == (6, 512)
    torch.testing.assert_close(packed_losses, padded_losses, atol=1e-5, rtol=1e-5)


def test_loss_falls_and_the_model_memorises(tmp_path, tiny_llama, gsm_rows):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tokenize(tmp_path, tiny_llama, gsm_rows[:4])
    out = tmp_path / "run"
    result = run(train_cmd(tiny_llama, [data], out, "--max-steps", 120, "--lr", 3e-3, "--warmup-ratio", 0,
                           "--micro-batch-rows", 4, "--max-seq-len", 256, "--log-every", 5))
    assert result.returncode == 0, result.stderr[-3000:]
    events = list(out.rglob("events.out.tfevents.*"))
    assert events, "TensorBoard logs are written"
    assert (out / "train_config.yaml").is_file() and (out / "model" / "generation_config.json").is_file()
    tok, model = AutoTokenizer.from_pretrained(out / "model"), AutoModelForCausalLM.from_pretrained(out / "model")
    for row in gsm_rows[:4]:
        prompt = row["text"].split("\nAnswer:")[0] + "\nAnswer:"
        ids = tok(prompt, return_tensors="pt")
        generated = model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids.input_ids.shape[1]:]
        assert tok.decode(generated, skip_special_tokens=True) == row["text"][len(prompt):]


def test_kill_minus_9_then_resume_is_bitwise_equal(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    args = ("--max-steps", 40, "--lr", 1e-3, "--micro-batch-rows", 2, "--max-seq-len", 256, "--save-every", 2, "--keep-last", 2)
    straight = run(train_cmd(tiny_llama, [data], tmp_path / "a", *args))
    assert straight.returncode == 0, straight.stderr[-3000:]
    out = tmp_path / "b"
    proc = subprocess.Popen(train_cmd(tiny_llama, [data], out, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
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


def test_sigterm_saves_and_exits_with_a_distinct_code(tmp_path, tiny_llama, gsm_rows):
    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(tiny_llama, [data], out, "--max-steps", 10000, "--micro-batch-rows", 1, "--save-every", 0),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not list(out.rglob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75
    saved = list((out / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and (saved[0] / "COMPLETE").is_file()


@pytest.mark.parametrize("preset", ["cpu_2proc.yaml", "fsdp2_1node_8gpu.yaml"])
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_llama, gsm_rows, preset):
    import yaml

    data = tokenize(tmp_path, tiny_llama, gsm_rows)
    common = ("--max-steps", 4, "--lr", 1e-3, "--max-seq-len", 256, "--save-every", 2)
    one = run(train_cmd(tiny_llama, [data], tmp_path / "one", *common, "--micro-batch-rows", 4))
    assert one.returncode == 0, one.stderr[-3000:]
    # The committed preset, resized for this machine: 2 CPU processes over gloo, fp32.
    config = yaml.safe_load((REPO / "configs" / "accelerate" / preset).read_text())
    config.update(num_processes=2, mixed_precision="no")
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(config))
    launcher = (str(Path(PY).with_name("accelerate")), "launch", "--config_file", str(tmp_path / "accelerate.yaml"),
                "-m", "rephraser.train")
    two = run(train_cmd(tiny_llama, [data], tmp_path / "two", *common, "--micro-batch-rows", 2, launcher=launcher),
              env={**ENV, "ACCELERATE_USE_CPU": "true"})  # accelerate's CPU multi-process switch (MULTI_CPU, gloo)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) x 2 rows" in two.stdout + two.stderr
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=2e-6, rtol=1e-5)
    assert any(not torch.equal(a[k], load_file(str(Path(tiny_llama) / "model.safetensors"))[k]) for k in a)  # it trained


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
