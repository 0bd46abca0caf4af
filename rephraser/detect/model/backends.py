"""The two ways of running a model for the detectors: transformers (hf) and vLLM's offline engine (vllm).

    scorer = open_scorer(cfg, cfg.model)            # HFScorer or VLLMScorer
    stats = scorer.stats(texts, ids, distribution=cfg.needs_distribution())
    peak, extras = scorer.cdd(item); hit, extras = scorer.ts_guess(item)
    scorer.close()                                  # frees the model before the next one is loaded

HF is the tested path. The vLLM path (prompt_logprobs for the chosen tokens; n samples per prompt for cdd) needs
vLLM installed and is not exercised by the offline test suite: it gives log-probs of the chosen tokens only, so
mink++ is refused for it in the config, and it tokenizes with the engine's tokenizer as HF does here (special
tokens added), passing token ids so both backends score the same tokens.
"""

from __future__ import annotations

import gc

import numpy as np

from rephraser.detect.model import likelihood, sampling
from rephraser.detect.model.loading import load_hf


class HFScorer:
    def __init__(self, cfg, name: str, field: str = "model"):
        self.cfg = cfg
        self.model, self.tokenizer = load_hf(name, cfg.device, cfg.dtype, field)

    def stats(self, texts, ids, distribution: bool, log=None, source: str = "items"):
        seqs = likelihood.encode(self.tokenizer, self.model, texts, ids, source)
        return likelihood.token_stats(self.model, seqs, self.cfg.batch_size, self.cfg.chunk_tokens, distribution, log)

    def cdd(self, item):
        return sampling.cdd_item(self._gen(), self.tokenizer, item, self.cfg)

    def ts_guess(self, item):
        return sampling.ts_guess_item(self._gen(), self.tokenizer, item, self.cfg)

    def _gen(self):
        if not hasattr(self, "gen"):
            self.gen = sampling.hf_generator(self.model, self.tokenizer)
        return self.gen

    def close(self):
        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class VLLMScorer:
    """Untested offline (needs vLLM): see the module docstring."""

    def __init__(self, cfg, name: str, field: str = "model"):
        from vllm import LLM

        from rephraser.modelref import resolve_model

        self.cfg = cfg
        dtype = "auto" if cfg.dtype == "auto" else cfg.dtype
        self.llm = LLM(model=resolve_model(name, field), dtype=dtype, seed=cfg.seed)
        self.tokenizer = self.llm.get_tokenizer()

    def _generate(self, seqs, params):
        from vllm.inputs import TokensPrompt

        return self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=False)

    def stats(self, texts, ids, distribution: bool, log=None, source: str = "items"):
        from vllm import SamplingParams

        assert not distribution, "mink++ is refused for vLLM by the config"
        seqs = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        outs = self._generate(seqs, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1))
        # prompt_logprobs[t] maps token ids to log-probs at position t and always holds the prompt's own token
        return [
            likelihood.TokenStats(np.array([o.prompt_logprobs[t][s[t]].logprob for t in range(1, len(s))], float))
            for s, o in zip(seqs, outs)
        ]

    def _gen(self, ids, n, temperature, max_tokens, seed):
        from vllm import SamplingParams

        stops = set(sampling.stop_ids(self.tokenizer))
        if temperature:
            mode = dict(temperature=temperature, top_k=-1, top_p=1.0, seed=seed % 2**31)
        else:
            mode = dict(temperature=0.0)
        params = SamplingParams(n=n, max_tokens=max_tokens, repetition_penalty=1.0, **mode)
        return [sampling.cut_at_stop(list(c.token_ids), stops) for c in self._generate([ids], params)[0].outputs]

    def cdd(self, item):
        return sampling.cdd_item(self._gen, self.tokenizer, item, self.cfg)

    def ts_guess(self, item):
        return sampling.ts_guess_item(self._gen, self.tokenizer, item, self.cfg)

    def close(self):
        del self.llm
        gc.collect()


def open_scorer(cfg, name: str, field: str = "model"):
    return (VLLMScorer if cfg.backend == "vllm" else HFScorer)(cfg, name, field)
