"""`rephraser-vllm`: vLLM's offline engine behind lm-eval's LM interface, all requests handed over at once.

    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,tensor_parallel_size=2 --tasks rephrased_gsm8k
    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,data_parallel_size=4 ...        # 4 engines
    lm_eval run --model rephraser-vllm --model_args pretrained=BASE,lora_local_path=ADAPTER --apply_chat_template ...

Greedy-until: contexts are tokenized as the model expects (BOS from the tokenizer, not doubled when a chat
template already wrote it), left-truncated to fit max_model_len - max_gen_toks, and every request goes to one
`LLM.generate` call (vLLM schedules and batches them continuously; outputs come back in request order); vLLM
stops on every EOS id of the generation config, on stop strings that are special tokens (as token ids: they
never appear in the decoded text) and on every other stop string, and the continuation is cut before the
earliest stop. Log-likelihood (MMLU) comes from prompt logprobs. Chat templates (`--apply_chat_template`,
`--fewshot_as_multiturn`, `--system_instruction`) are the tokenizer's. Tensor parallelism is vLLM's; data
parallelism is one engine per group of `tensor_parallel_size` GPUs, each in its own process with its share of
the requests (vLLM's offline engine takes no data_parallel_size for dense models; lm-eval's own vllm backend
does the same with ray). It imports nothing of lm-eval's vllm module, which needs a distribution named `vllm`.
"""

from __future__ import annotations

from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import has_bos_prefix

from rephraser.errors import ConfigError
from rephraser.models.stops import cut_at_stops, stop_token_ids


class RephraserVLLM(TemplateLM):
    def __init__(
        self,
        pretrained: str,
        dtype: str = "auto",
        revision: str | None = None,
        tokenizer: str | None = None,
        tokenizer_revision: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        max_model_len: int | None = None,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        seed: int = 1234,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        lora_local_path: str | None = None,
        max_lora_rank: int = 16,
        add_bos_token: bool | None = None,
        batch_size=None,
        device=None,
        **engine_kwargs,
    ):
        super().__init__()
        self.data_parallel_size, self.tensor_parallel_size = int(data_parallel_size), int(tensor_parallel_size)
        self.engine_args = dict(
            model=pretrained,
            revision=revision,
            tokenizer=tokenizer,
            tokenizer_revision=tokenizer_revision,
            dtype=dtype,
            tensor_parallel_size=self.tensor_parallel_size,
            seed=int(seed),
            max_model_len=int(max_model_len or max_length) if (max_model_len or max_length) else None,
            gpu_memory_utilization=float(gpu_memory_utilization),
            enforce_eager=bool(enforce_eager),
            trust_remote_code=bool(trust_remote_code),
            enable_lora=bool(lora_local_path),
            max_lora_rank=int(max_lora_rank),
            **engine_kwargs,
        )
        self.lora_local_path = lora_local_path
        self.add_bos_token = add_bos_token
        self.max_gen_toks = int(max_gen_toks)
        if self.data_parallel_size > 1:
            check_data_parallel(self.data_parallel_size, self.tensor_parallel_size)
            self.llm = None
            self.tokenizer, self.max_length = _tokenizer_and_length(self.engine_args)
        else:
            from vllm import LLM

            self.llm = LLM(**self.engine_args)
            self.tokenizer = self.llm.get_tokenizer()
            self.max_length = self.llm.llm_engine.model_config.max_model_len
        self.generation_config = _generation_config(pretrained, revision)

    # ------------------------------------------------------------------ TemplateLM plumbing
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.eot_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None:
            add_special_tokens = self.add_bos_token
        bos = self.tokenizer.bos_token
        if add_special_tokens is None and has_bos_prefix(string, bos):  # a chat template wrote BOS already
            add_special_tokens = False
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
            ids = self.tok_encode(context)[-(self.max_length - max_gen_toks) :]  # left truncation
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(
                SamplingParams(
                    temperature=temperature,
                    max_tokens=max_gen_toks,
                    stop=until or None,
                    stop_token_ids=sorted(stop_token_ids(self.tokenizer, until, self.generation_config)),
                    skip_special_tokens=True,
                    **{k: v for k, v in kwargs.items() if k in ("top_p", "top_k", "seed")},
                )
            )
            stops.append(until)
        texts = self._run("generate", prompts, params, None, disable_tqdm)
        results = [cut_at_stops(text, until) for text, until in zip(texts, stops)]
        for request, text in zip(requests, results):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return results

    # ------------------------------------------------------------------ log-likelihood
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        from vllm import SamplingParams, TokensPrompt

        prompts, spans = [], []
        for _, context_ids, continuation_ids in requests:
            ids = (context_ids + continuation_ids)[-self.max_length :]
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            spans.append((len(ids) - len(continuation_ids), ids))
        params = [SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)] * len(prompts)
        results = self._run("score", prompts, params, spans, disable_tqdm)
        for (cache_key, _, _), result in zip(requests, results):
            if cache_key is not None:
                self.cache_hook.add_partial("loglikelihood", cache_key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("rephraser-vllm: perplexity tasks are not supported; use lm-eval's vllm model")

    # ------------------------------------------------------------------ engines
    def _run(self, kind: str, prompts: list, params: list, spans: list | None, disable_tqdm: bool) -> list:
        """All requests through one engine, or split over data-parallel engines; results in request order."""
        if self.llm is not None:
            outputs = self.llm.generate(
                prompts,
                sampling_params=params,
                use_tqdm=not disable_tqdm,
                lora_request=_lora_request(self.lora_local_path),
            )
            return _results(kind, outputs, spans)
        from rephraser.models.vllm_dp import run_data_parallel

        return run_data_parallel(
            self.engine_args,
            self.data_parallel_size,
            self.tensor_parallel_size,
            kind,
            prompts,
            params,
            spans,
            self.lora_local_path,
        )


def _results(kind: str, outputs, spans: list | None) -> list:
    """Plain results (picklable, the same for one engine or several): texts, or (log-likelihood, is_greedy)."""
    if kind == "generate":
        return [out.outputs[0].text for out in outputs]
    results = []
    for out, (start, ids) in zip(outputs, spans):
        total, greedy = 0.0, True
        for position in range(start, len(ids)):
            logprobs = out.prompt_logprobs[position]
            total += logprobs[ids[position]].logprob
            best = max(logprobs.items(), key=lambda item: item[1].logprob)[0]
            greedy = greedy and best == ids[position]
        results.append((total, greedy))
    return results


def _lora_request(path: str | None):
    if path is None:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest("finetuned", 1, path)


def check_data_parallel(data_parallel_size: int, tensor_parallel_size: int) -> None:
    """One engine per group of tensor_parallel_size GPUs: there must be enough GPUs (and GPUs at all)."""
    import torch

    needed = data_parallel_size * tensor_parallel_size
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ConfigError(
            f"data_parallel_size={data_parallel_size}: data parallelism runs one vLLM engine per GPU group "
            "and needs CUDA GPUs; this machine has none (use data_parallel_size=1)"
        )
    if available < needed:
        raise ConfigError(
            f"data_parallel_size={data_parallel_size} x tensor_parallel_size={tensor_parallel_size} needs "
            f"{needed} GPUs; {available} are visible"
        )


def _tokenizer_and_length(engine_args: dict):
    from transformers import AutoConfig, AutoTokenizer

    source = engine_args.get("tokenizer") or engine_args["model"]
    tokenizer = AutoTokenizer.from_pretrained(
        source,
        revision=engine_args.get("tokenizer_revision"),
        trust_remote_code=engine_args.get("trust_remote_code", False),
    )
    length = engine_args.get("max_model_len")
    if not length:
        config = AutoConfig.from_pretrained(
            engine_args["model"],
            revision=engine_args.get("revision"),
            trust_remote_code=engine_args.get("trust_remote_code", False),
        )
        length = getattr(config, "max_position_embeddings", None) or 2048
    return tokenizer, int(length)


def _generation_config(pretrained: str, revision: str | None):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(pretrained, revision=revision)
    except (OSError, ValueError):
        return None  # no generation_config.json: the tokenizer's EOS only
