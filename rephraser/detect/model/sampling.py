"""The sampling detectors: cdd (Dong et al. 2024) and ts-guess (Deng et al. 2024), with transformers' generate.

    gen = hf_generator(model, tokenizer)         # or the vLLM backend's generator
    cdd_item(gen, tokenizer, item, cfg)          -> (peakedness, extras)
    ts_guess_item(gen, tokenizer, item, cfg)     -> (1.0 | 0.0, extras)

cdd ("Generalization or Memorization", Dong et al. 2024; reference code YihongDong/CDD-TED4LLMs CDD.py): from the
item's prompt, one greedy output s_0 and N outputs s_1..s_N sampled at temperature T (the paper: N = 50, T = 0.8).
With d_i the edit distance between s_i and s_0 and l the longest of s_0..s_N,
    peakedness = (1/N) #{i : d_i <= alpha * l}         (alpha = 0.05; an item is flagged when peakedness > xi = 0.01)
The reference code measures d over the model's token ids, each output cut to its first 100 tokens; `char` measures
it over the decoded, stripped text instead. A model that memorised an answer puts its samples near the greedy one.
Sampling here is plain temperature sampling (top-k and top-p off, no repetition penalty), whatever the model's
generation config says; seeded per item (seed and item id), so a rerun gives the same outputs.

ts-guess ("Investigating Data Contamination in Modern Benchmarks", Deng et al. 2024, TS-Guessing question-
multichoice): one wrong option is masked (chosen per item by a seeded draw) and the model is asked, with the
paper's prompt, to fill it; the score is the exact match of its fill with the masked option after SQuAD-style
normalisation (lower case, no punctuation or articles, single spaces). Compared with the masked option's text, as
the paper and HELM do (LLMSanitize compares with the correct answer instead, which measures something else).
"""

from __future__ import annotations

import random
import re
import string
import zlib

from rapidfuzz.distance import Levenshtein

from rephraser.errors import RephraserError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def peakedness(greedy, samples: list, alpha: float) -> float:
    """Share of samples within alpha x (longest output) edit operations of the greedy output. `greedy` and each
    sample are sequences (token ids or strings): rapidfuzz's Levenshtein distance works on both."""
    if not samples:
        raise ValueError("peakedness needs at least one sample")
    longest = max(len(greedy), *(len(s) for s in samples))
    return sum(Levenshtein.distance(greedy, s) <= alpha * longest for s in samples) / len(samples)


def item_seed(seed: int, item_id: str) -> int:
    """One seed per item, independent of the order items are scored in."""
    return (seed * 0x9E3779B1 + zlib.crc32(item_id.encode("utf-8"))) % 2**63


def stop_ids(tokenizer, generation_eos=None) -> list[int]:
    """The ids that end an output: the tokenizer's EOS and the generation config's. Without any, every output
    runs to max_new_tokens and cdd would measure truncation, not memorisation: refused."""
    ids = []
    for value in (tokenizer.eos_token_id, generation_eos):
        ids += value if isinstance(value, list) else [value] if value is not None else []
    if not ids:
        raise RephraserError(
            f"tokenizer: {getattr(tokenizer, 'name_or_path', '?')} has no EOS token (nor does the model's generation "
            "config): cdd and ts-guess need one to know where an output ends"
        )
    return list(dict.fromkeys(ids))


def cut_at_stop(seq: list[int], stops) -> list[int]:
    return seq[: next((j for j, t in enumerate(seq) if t in stops), len(seq))]


def prompt_ids(tokenizer, prompt: str, chat: bool) -> list[int]:
    if not chat:
        return tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if not getattr(tokenizer, "chat_template", None):
        raise RephraserError(
            f"chat_template: {getattr(tokenizer, 'name_or_path', '?')} has no chat template; drop --chat-template"
        )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def hf_generator(model, tokenizer):
    """gen(ids, n, temperature, max_new_tokens, seed) -> n outputs (token ids, cut before the first stop id) for
    one prompt, with transformers' generate; greedy when temperature is None; `seed` seeds torch first."""
    stops = stop_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]

    def gen(ids: list[int], n: int, temperature: float | None, max_new_tokens: int, seed: int | None):
        import torch
        from transformers import GenerationConfig

        if temperature:
            mode = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            mode = dict(do_sample=False)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            eos_token_id=stops,
            pad_token_id=pad,
            repetition_penalty=1.0,
            **mode,
        )
        if seed is not None:
            torch.manual_seed(seed)
        inputs = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), generation_config=config)
        return [cut_at_stop(row, stops) for row in out[:, len(ids) :].tolist()]

    return gen


def cdd_item(gen, tokenizer, item, cfg) -> tuple[float, dict]:
    ids = prompt_ids(tokenizer, item.prompt, cfg.chat_template)
    greedy = gen(ids, 1, None, cfg.cdd_max_new_tokens, None)[0]
    samples = gen(ids, cfg.cdd_samples, cfg.cdd_temperature, cfg.cdd_max_new_tokens, item_seed(cfg.seed, item.id))
    if cfg.cdd_distance == "char":
        greedy_seq = tokenizer.decode(greedy, skip_special_tokens=True).strip()
        sample_seqs = [tokenizer.decode(s, skip_special_tokens=True).strip() for s in samples]
    else:
        greedy_seq, sample_seqs = greedy, samples
    peak = peakedness(greedy_seq, sample_seqs, cfg.cdd_alpha)
    extras = {
        "cdd_flag": peak > cfg.cdd_xi,
        "cdd_greedy": tokenizer.decode(greedy, skip_special_tokens=True),
        "cdd_longest": max(len(greedy_seq), *(len(s) for s in sample_seqs)),
    }
    return peak, extras


def masked_option(seed: int, item) -> int:
    wrong = [i for i in range(len(item.choices)) if i != item.answer]
    return random.Random(f"{seed}:{item.id}").choice(wrong)


def ts_guess_prompt(question: str, choices: list[str], masked: int) -> str:
    """The paper's question-multichoice prompt (Deng et al. 2024, Figure 3), options in brackets as in their code."""
    letter = LETTERS[masked]
    options = "".join(
        f"\n{LETTERS[i]}: [MASK]" if i == masked else f"\n{LETTERS[i]}: [{choice}]" for i, choice in enumerate(choices)
    )
    return (
        f"Please fill in the [] in option {letter} based on your benchmark knowledge."
        "\n\nThe crucial rule is that you should provide different answer in other options below."
        f"\n\nQuestion: {question}\nOptions:{options}\n\nReply with answer only."
    )


def normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def parse_fill(reply: str, letter: str) -> str:
    """The fill from a reply: its first non-empty line, without a leading 'X:' and surrounding brackets."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    first = re.sub(rf"^(option\s+)?{letter}\s*[:.)]\s*", "", first, flags=re.IGNORECASE)
    return first.strip().removeprefix("[").removesuffix("]").strip()


def ts_guess_item(gen, tokenizer, item, cfg) -> tuple[float, dict]:
    masked = masked_option(cfg.seed, item)
    prompt = ts_guess_prompt(item.question, item.choices, masked)
    ids = prompt_ids(tokenizer, prompt, cfg.chat_template)
    reply = tokenizer.decode(gen(ids, 1, None, cfg.ts_max_new_tokens, None)[0], skip_special_tokens=True)
    fill = parse_fill(reply, LETTERS[masked])
    expected = item.choices[masked]
    hit = bool(normalise(expected)) and normalise(fill) == normalise(expected)
    return float(hit), {"ts_guess_option": LETTERS[masked], "ts_guess_fill": fill, "ts_guess_expected": expected}
