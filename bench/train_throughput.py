"""Training throughput: the study's path (HF Trainer, padded to 1536, batch 1) vs `rephraser.train`.

    python bench/train_throughput.py                       # CPU: small Llama; also chunked vs full-logits loss
    python bench/train_throughput.py --gpu-1b              # GPU: the ~1.03 B (non-embedding) Llama shape, per
                                                           # attention implementation (sdpa, flex_attention,
                                                           # flash_attention_2 if installed), compiled
    python bench/train_throughput.py --gpu-1b --fsdp2      # also rephraser.train through the FSDP2 preset, 1 process

Same random-weight model shape and the same LMSYS rephrased GSM-8K samples for every path. "Useful tokens" are
the real (non-padding) tokens trained on. Prints useful tokens/s of each path, the ratio to the study's, MFU
(6*N FLOP per token with N the non-embedding parameters; peak 989 TFLOP/s dense bf16 on H100/H200,
--peak-tflops otherwise) and peak memory (GPU: torch's peak allocation; CPU: peak RSS of the training
process). The study's path runs in this process (timed around trainer.train()); ours runs as
`python -m rephraser.train` and reports its own loop time (train_metrics.json), both excluding model loading.
It needs no network and nothing but torch, transformers, accelerate and this package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {
    "cpu": dict(hidden=256, layers=4, heads=4, intermediate=688),
    "gpu-1b": dict(hidden=2048, layers=20, heads=16, intermediate=5632),
}


def build(work: Path, shape: dict, data_dir: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from rephraser.testing.tokenizers import build_llama_spm_tokenizers

    texts = [json.loads(line)["question"] for line in open(data_dir / "gsm8k" / "train.jsonl")]
    _, tok = build_llama_spm_tokenizers(texts, work / "tok", vocab_size=8000)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.unk_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(work / "model")
    tok.save_pretrained(work / "model")
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name and "lm_head" not in name)
    return work / "model", n


def tokenize(model_dir: Path, src: Path, out: Path, layout: str, limit: int) -> Path:
    from rephraser.data.tokenize import TokenizeConfig, tokenize_file

    subset = out.with_suffix(".jsonl")
    subset.write_text("".join(line for _, line in zip(range(limit), open(src, encoding="utf-8"))))
    cfg = TokenizeConfig(model=str(model_dir), input=str(subset), out=str(out), layout=layout, max_seq_len=1536)
    tokenize_file(cfg, log=lambda *_: None)
    return out


def study_path(model_dir: Path, tok_file: Path, work: Path, samples: int) -> tuple[float, int]:
    """FastChat's trainer = HF Trainer on the study's padded rows, batch 1, its recipe's optimizer settings."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from rephraser.data.tokfile import TokenFile

    tf = TokenFile(tok_file)

    class Padded(torch.utils.data.Dataset):
        def __len__(self):
            return samples

        def __getitem__(self, i):
            ids = torch.from_numpy(tf.tokens[i % len(tf)].astype("int64"))
            keep = torch.from_numpy(((tf.mask[i % len(tf)] & 1) == 1) & ((tf.mask[i % len(tf)] & 2) == 0))
            return {"input_ids": ids, "labels": ids.masked_fill(~keep, -100)}

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=torch.float32)
    args = TrainingArguments(
        output_dir=str(work / "hf"),
        per_device_train_batch_size=1,
        max_steps=samples,
        learning_rate=2e-5,
        weight_decay=0.0,
        adam_beta2=0.95,
        warmup_steps=max(1, samples // 20),
        lr_scheduler_type="cosine",
        bf16=cuda,
        tf32=cuda or None,
        report_to=[],
        save_strategy="no",
        logging_steps=10**9,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=not cuda,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Padded())
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    useful = sum(int(tf.lengths()[i % len(tf)]) for i in range(samples))
    return seconds, useful


def ours(model_dir: Path, tok_file: Path, out: Path, steps: int, fsdp2: bool, extra: tuple = ()) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "rephraser.train",
        "--model",
        str(model_dir),
        "--data",
        str(tok_file),
        "--output-dir",
        str(out),
        "--max-steps",
        str(steps),
        "--save-every",
        "0",
        "--report-to",
        "none",
        *extra,
    ]
    env = dict(os.environ)
    if fsdp2:
        preset = Path(__file__).resolve().parents[1] / "rephraser" / "configs" / "accelerate" / "fsdp2_1gpu.yaml"
        cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file", str(preset), *cmd[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads((out / "train_metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", "../shared/data"))
    parser.add_argument("--gpu-1b", action="store_true", help="the ~1 B Llama shape (needs a GPU)")
    parser.add_argument("--fsdp2", action="store_true", help="also run ours through configs/accelerate/fsdp2_1gpu.yaml")
    parser.add_argument("--study-samples", type=int, default=None, help="padded samples (steps) for the study's path")
    parser.add_argument("--our-steps", type=int, default=None, help="optimizer steps for rephraser.train")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100/H200: 989)")
    args = parser.parse_args()
    shape_name = "gpu-1b" if args.gpu_1b else "cpu"
    study_samples = args.study_samples or (300 if args.gpu_1b else 12)
    our_steps = args.our_steps or (60 if args.gpu_1b else 4)
    work = Path(tempfile.mkdtemp(prefix="trainbench-"))
    data = Path(args.data_dir) / "lmsys_rephrase" / "rephrase" / "rephrase_gsm8k.jsonl"
    model_dir, n_params = build(work, SHAPES[shape_name], Path(args.data_dir))
    padded = tokenize(model_dir, data, work / "padded.tok", "padded", 1319)
    ragged = tokenize(model_dir, data, work / "ragged.tok", "ragged", 1319)

    seconds, useful = study_path(model_dir, padded, work, study_samples)
    study_rate = useful / seconds
    runs = {}
    if args.gpu_1b:
        for attention in attention_implementations():
            runs[f"rephraser.train ({attention}, compiled)"] = ours(
                model_dir,
                ragged,
                work / f"ours-{attention}",
                our_steps,
                fsdp2=False,
                extra=("--attn-implementation", attention),
            )
        if args.fsdp2:
            runs["rephraser.train (sdpa, FSDP2 preset, 1 process)"] = ours(
                model_dir, ragged, work / "ours-fsdp2", our_steps, fsdp2=True
            )
    else:
        runs["rephraser.train (sdpa, chunked loss)"] = ours(model_dir, ragged, work / "ours", our_steps, fsdp2=False)
        runs["rephraser.train (sdpa, full-logits loss)"] = ours(
            model_dir, ragged, work / "ours-full", our_steps, fsdp2=False, extra=("--loss-chunk-tokens", "0")
        )

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    peak = args.peak_tflops * 1e12
    print(f"device: {device}; model: Llama {SHAPES[shape_name]} = {n_params / 1e6:.1f} M non-embedding parameters")
    print(f"data: LMSYS rephrased GSM-8K, {useful / study_samples:.0f} real tokens per sample on average")
    print(
        f"study (HF Trainer, padded 1536, batch 1): {study_rate:10,.0f} "
        f"useful tokens/s   MFU {study_rate * 6 * n_params / peak:6.2%}"
    )
    for name, m in runs.items():
        rate = m["loss_tokens_per_s"]
        memory = (
            f"peak GPU memory {m['peak_gpu_memory_gib']:.1f} GiB"
            if m.get("peak_gpu_memory_gib")
            else f"peak RSS {m['peak_rss_gib']:.2f} GiB"
        )
        print(
            f"{name}: {rate:10,.0f} useful tokens/s   MFU {rate * 6 * n_params / peak:6.2%} "
            f"  ratio {rate / study_rate:6.1f}x   {memory}"
        )
    if not torch.cuda.is_available():
        print("(CPU run: MFU is against the GPU peak and means little here; run with --gpu-1b on an H100/H200)")


def attention_implementations() -> list[str]:
    import importlib.util

    return ["sdpa", "flex_attention"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])


if __name__ == "__main__":
    main()
