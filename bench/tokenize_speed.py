"""Tokenize throughput: the study's rephrase_tokenize.py approach vs `rephraser tokenize`, in one process.

    python bench/tokenize_speed.py [--data-dir ../shared/data] [--repeat 3] [--vocab 8000]

Both sides use the same Llama-2-style sentencepiece model (trained here, offline): the baseline calls the
slow tokenizer (transformers' SentencePieceBackend) one row at a time with return_tensors="np", as the
study did, then pads/truncates in memory and np.saves; ours streams batches through the fast tokenizer
converted from the same model. Inputs: the LMSYS rephrased GSM-8K and HumanEval files. The token ids
of both are checked equal before any number is printed. Prints best-of-N rows/s, tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

FILES = ("rephrase_gsm8k.jsonl", "humaneval_python.jsonl")


def study_tokenize(tokenizer, path: Path, out: Path, max_seq_len: int) -> np.ndarray:
    """The study's script, minus its argparse: per-row slow tokenization, pad/truncate, np.save."""
    rows = []
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        rows.append((row["prompt"], row["canonical_solution"]) if "prompt" in row else ("", row["text"]))
    token_ids = []
    for prompt, solution in rows:
        prompt_ids = tokenizer(prompt, return_tensors="np").input_ids[0]
        solution_ids = tokenizer(solution, return_tensors="np").input_ids[0]
        token_ids.append(np.concatenate((prompt_ids, solution_ids[1:], [tokenizer.eos_token_id])))
    tokens = np.full((len(token_ids), max_seq_len), tokenizer.unk_token_id, dtype=np.uint16)
    mask = np.full((len(token_ids), max_seq_len), 2, dtype=np.int8)
    for i, ids in enumerate(token_ids):
        n = min(len(ids), max_seq_len)
        tokens[i, :n], mask[i, :n] = ids[:n], 1
    for suffix, array in ((".tok", tokens), (".msk", mask), (".idx", np.arange(len(tokens) + 1))):
        with open(out.with_suffix(suffix), "wb") as fh:
            np.save(fh, array)
    return tokens


def ours_tokenize(tokenizer, path: Path, out: Path, max_seq_len: int):
    from rephraser.data.tokenize import TokenizeConfig, tokenize_file

    cfg = TokenizeConfig(model="bench", input=str(path), out=str(out), max_seq_len=max_seq_len)
    return tokenize_file(cfg, tokenizer=tokenizer, log=lambda *_: None)


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("REPHRASER_DATA_DIR", "../shared/data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--max-seq-len", type=int, default=1536)
    args = parser.parse_args()
    from rephraser.data.tokfile import TokenFile
    from rephraser.testing.tokenizers import build_llama_spm_tokenizers

    data = Path(args.data_dir)
    sources = [data / "lmsys_rephrase" / "rephrase" / name for name in FILES]
    corpus = [
        json.loads(line)["question"] + "\n" + json.loads(line)["answer"]
        for line in open(data / "gsm8k" / "train.jsonl")
    ]
    corpus += [json.loads(line)["text"] for line in open(sources[1]) if json.loads(line)["text"]]
    work = Path(tempfile.mkdtemp(prefix="tokbench-"))
    slow, fast = build_llama_spm_tokenizers(corpus, work / "spm", vocab_size=args.vocab)
    rows = sum(1 for src in sources for _ in open(src))

    def run_study():
        return [study_tokenize(slow, src, work / f"study{i}.tok", args.max_seq_len) for i, src in enumerate(sources)]

    def run_ours():
        return [ours_tokenize(fast, src, work / f"ours{i}.tok", args.max_seq_len) for i, src in enumerate(sources)]

    # Correctness first: same ids (ours skips the 17 empty HumanEval placeholders the study kept as [BOS, EOS]).
    study_arrays, reports = run_study(), run_ours()
    tokens = sum(r.tokens for r in reports)
    for i, array in enumerate(study_arrays):
        ours = TokenFile(work / f"ours{i}.tok")
        kept = [
            row
            for row in array
            if not (row[0] == slow.bos_token_id and row[1] == slow.eos_token_id and row[2] == slow.unk_token_id)
        ]
        assert len(kept) == len(ours), (len(kept), len(ours))
        for j in range(len(ours)):
            assert ours[j].ids.tolist() == [int(t) for t in kept[j][: len(ours[j].ids)]], (FILES[i], j)
    from rephraser.data.encode import batch_encoder

    encode = batch_encoder(fast)
    texts = [json.loads(line).get("text", "") for src in sources for line in open(src, encoding="utf-8")]
    t_study, t_ours = best_time(run_study, args.repeat), best_time(run_ours, args.repeat)
    t_encoder = best_time(lambda: encode(texts), args.repeat)
    print(
        "tokenizer: Llama-2-style sentencepiece BPE, vocabulary "
        f"{args.vocab}; {rows} rows, {tokens} tokens; best of {args.repeat}"
    )
    print(
        f"study (slow tokenizer, one row at a time): {t_study:7.3f} s  "
        f"{rows / t_study:9.0f} rows/s  {tokens / t_study:10.0f} tokens/s"
    )
    print(
        f"rephraser (fast, batched, streamed):        {t_ours:7.3f} s  "
        f"{rows / t_ours:9.0f} rows/s  {tokens / t_ours:10.0f} tokens/s"
    )
    print(
        f"  of which the Rust encoder alone:          {t_encoder:7.3f} "
        f"s  (ceiling for any batched path: {t_study / t_encoder:.1f}x)"
    )
    print(
        f"ratio: {t_study / t_ours:.1f}x on {os.cpu_count()} CPU cores "
        "(the batch encoder scales with cores; the baseline does not)"
    )


if __name__ == "__main__":
    main()
