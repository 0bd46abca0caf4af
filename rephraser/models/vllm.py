"""`rephraser-vllm`: vLLM's offline engine behind lm-eval's LM interface, all requests handed over at once.

    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,tensor_parallel_size=2,data_parallel_size=2 ...

Greedy-until: contexts are tokenized as the model expects (BOS from the tokenizer), left-truncated to fit
max_model_len - max_gen_toks, and every request goes to one `LLM.generate` call (vLLM schedules and batches
them continuously; outputs come back in request order); vLLM stops on EOS and on every stop string in the
decoded text, and the continuation is cut before the earliest stop. Log-likelihood (MMLU) comes from
prompt logprobs. Tensor and data parallelism are vLLM's own (tensor_parallel_size, data_parallel_size).
It imports nothing of lm-eval's vllm module, which needs a distribution named exactly `vllm`.
"""

from __future__ import annotations

from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM

from rephraser.models.stops import cut_at_stops


class RephraserVLLM(TemplateLM):
    def __init__(self, pretrained: str, dtype: str = "auto", tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 max_model_len: int | None = None, max_gen_toks: int = 256, seed: int = 1234,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False, trust_remote_code: bool = False,
                 batch_size=None, device=None, **engine_kwargs):
        super().__init__()
        from vllm import LLM

        self.llm = LLM(model=pretrained, dtype=dtype, tensor_parallel_size=int(tensor_parallel_size),
                       data_parallel_size=int(data_parallel_size), max_model_len=max_model_len, seed=int(seed),
                       gpu_memory_utilization=float(gpu_memory_utilization), enforce_eager=bool(enforce_eager),
                       trust_remote_code=bool(trust_remote_code), **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = self.llm.llm_engine.model_config.max_model_len
        self.max_gen_toks = int(max_gen_toks)

    # ------------------------------------------------------------------ TemplateLM plumbing
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None:
            return self.tokenizer(string)["input_ids"]
        return self.tokenizer(string, add_special_tokens=add_special_tokens)["input_ids"]

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        from vllm import SamplingParams, TokensPrompt

        prompts, params, stops = [], [], []
        for request in requests:
            context, gen_kwargs = request.args
            kwargs = dict(gen_kwargs)
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_gen_toks = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            temperature = 0.0 if not kwargs.pop("do_sample", False) else float(kwargs.pop("temperature", 1.0))
            kwargs.pop("temperature", None)
            ids = self.tok_encode(context)[-(self.max_length - max_gen_toks):]  # left truncation
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(SamplingParams(temperature=temperature, max_tokens=max_gen_toks, stop=until or None,
                                         skip_special_tokens=True, **{k: v for k, v in kwargs.items() if k in ("top_p", "top_k", "seed")}))
            stops.append(until)
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=not disable_tqdm)
        results = [cut_at_stops(out.outputs[0].text, until) for out, until in zip(outputs, stops)]
        for request, text in zip(requests, results):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return results

    # ------------------------------------------------------------------ log-likelihood
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        from vllm import SamplingParams, TokensPrompt

        prompts, spans = [], []
        for _, context_ids, continuation_ids in requests:
            ids = (context_ids + continuation_ids)[-self.max_length:]
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            spans.append((len(ids) - len(continuation_ids), ids))
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=not disable_tqdm)
        results = []
        for out, (start, ids) in zip(outputs, spans):
            total, greedy = 0.0, True
            for position in range(start, len(ids)):
                logprobs = out.prompt_logprobs[position]
                total += logprobs[ids[position]].logprob
                best = max(logprobs.items(), key=lambda item: item[1].logprob)[0]
                greedy = greedy and best == ids[position]
            results.append((total, greedy))
        for (cache_key, _, _), result in zip(requests, results):
            if cache_key is not None:
                self.cache_hook.add_partial("loglikelihood", cache_key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("rephraser-vllm: perplexity tasks are not supported; use lm-eval's vllm model")
