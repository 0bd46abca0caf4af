"""The likelihood detectors, from per-token statistics (rephraser.detect.model.likelihood).

    likelihood_scores(["loss", "zlib", "mink", "mink++"], stats, text, k=0.2)   # {"loss": -2.1, ...}
    difference(stats, reference_stats)                                          # ref and paired

Every score is oriented so that higher means more likely contaminated. With x_1..x_n the tokens after the first,
lp_t = log p(x_t | x_<t):

- loss    = (1/n) sum_t lp_t: the mean token log-likelihood (minus the LM loss; Yeom et al. 2018, the
            reference code's `ll = -loss`).
- zlib    = loss / Z, Z = len(zlib.compress(text.encode("utf-8"))) in bytes (default level): Carlini et al. 2021's
            ratio of log-perplexity to zlib entropy, negated; the Min-K% / Min-K%++ reference code's
            `ll / len(zlib.compress(bytes(text, 'utf-8')))`.
- mink    = mean of the m lowest lp_t, m = max(1, int(n * k)) (Shi et al. 2024, Min-K% Prob; reference code
            `np.mean(np.sort(token_log_probs)[:int(len * ratio)])`). The reference code takes the mean of an empty
            selection (nan) when n * k < 1; we keep the single lowest token instead.
- mink++  = the same over (lp_t - mu_t) / sigma_t, mu_t and sigma_t the mean and standard deviation of log p(z | x_<t)
            for z drawn from the model's own next-token distribution (Zhang et al. 2025, Min-K%++; reference code
            `(token_log_probs - mu) / sigma.sqrt()` with sigma the variance).
- ref     = loss under the model - loss under the reference model, each with its own tokenizer (Carlini et al.
            2021's reference-model comparison; Min-K% reference code `p1_likelihood - p_ref_likelihood`, negated).
- paired  = loss on the item's text - loss on its twin (e.g. original minus rephrased). A model that memorised the
            text prefers it to a rewording of the same content. When the model was trained on the twin itself
            (the LMSYS study trains on rephrases), the sign flips: score the rephrase as the text and the original
            as its twin.

A text with no scored token (one token, no BOS) has no score: nan, counted by the caller, never 0.
"""

from __future__ import annotations

import zlib

import numpy as np

from rephraser.detect.model.likelihood import TokenStats

NAN = float("nan")


def loss(stats: TokenStats) -> float:
    return float(np.mean(stats.logprobs)) if len(stats.logprobs) else NAN


def zlib_bytes(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8")))


def zlib_score(stats: TokenStats, text: str) -> float:
    return loss(stats) / zlib_bytes(text)


def lowest_k_mean(values: np.ndarray, k: float) -> float:
    if not len(values):
        return NAN
    m = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:m]))


def mink(stats: TokenStats, k: float) -> float:
    return lowest_k_mean(stats.logprobs, k)


def standardised(stats: TokenStats) -> np.ndarray:
    """(lp_t - mu_t) / sigma_t (the numerator from the logits: likelihood.position_stats). A position whose
    distribution is a point mass ON the chosen token (sigma 0, lp = mu = 0: a memorised position) has no
    standardised value and is left out; a point mass elsewhere (the chosen token impossible) gives -inf."""
    certain = (stats.sigma == 0) & (stats.centred == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (stats.centred / stats.sigma)[~certain]


def minkpp(stats: TokenStats, k: float) -> float:
    """The mean of the lowest k of the standardised log-probs. Dropping the whole item at a certain position (as
    before) left out exactly the most memorised items and biased the AUROC down; any other non-finite value makes
    the item unscored (counted), never a huge finite number."""
    z = standardised(stats)
    if not len(z) or not np.all(np.isfinite(z)):
        return NAN
    return lowest_k_mean(z, k)


def difference(a: TokenStats, b: TokenStats) -> float:
    return loss(a) - loss(b)


def likelihood_scores(detectors, stats: TokenStats, text: str, k: float) -> dict[str, float]:
    """The single-model detectors that the one pass over `text` gives (ref and paired need a second pass)."""
    formulas = {
        "loss": lambda: loss(stats),
        "zlib": lambda: zlib_score(stats, text),
        "mink": lambda: mink(stats, k),
        "mink++": lambda: minkpp(stats, k),
    }
    return {name: formulas[name]() for name in detectors if name in formulas}
