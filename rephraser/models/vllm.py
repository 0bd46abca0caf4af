"""`rephraser-vllm`: vLLM's offline engine behind lm-eval's LM interface, all requests handed over at once.

    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,tensor_parallel_size=2 --tasks rephrased_gsm8k
    lm_eval run --model rephraser-vllm --model_args pretrained=DIR,data_parallel_size=4 ...        # 4 engines
    lm_eval run --model rephraser-vllm --model_args pretrained=BASE,lora_local_path=ADAPTER --apply_chat_template ...

Greedy-until: contexts are tokenized as the model expects (BOS from the tokenizer, not doubled when a chat
template already wrote it), left-truncated to fit max_model_len - max_gen_toks, and every request goes to one
`LLM.generate` call (vLLM schedules and batches them continuously; outputs come back in request order); vLLM
stops on every EOS id of the generation config, on stop strings that are special tokens (as token ids: they
never appear in the decoded text) and on every other stop string; the generated ids are decoded by the
tokenizer as in rephraser-hf and the continuation is cut before the earliest stop.

Generation settings are read as lm-eval's hf backend reads them (settings.py) and mapped to SamplingParams:
every SamplingParams field passes through; HF names are mapped (max_new_tokens -> max_tokens, do_sample=False
-> temperature 0, until -> stop); the model's generation_config.json acts as in HF generate (its
repetition_penalty also when greedy; top_k/top_p when sampling, with transformers' top_k=50 default); an HF
setting vLLM lacks (num_beams=2, no_repeat_ngram_size) is refused with a ConfigError, never dropped. A sampled
request gets its own seed, from (the request's seed or the engine's, its index in the call): repeats of one
prompt are independent, and the texts are the same for one engine or several.

Log-likelihood (MMLU) comes from prompt logprobs. Chat templates (`--apply_chat_template`,
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
from rephraser.log import get_logger
from rephraser.models.settings import (
    check_room,
    generation_config_fields,
    request_seed,
    request_settings,
    vllm_sampling_kwargs,
)
from rephraser.models.stops import cut_at_stop_ids, cut_at_stops, stop_token_ids
from rephraser.models.vllm_dp import run_data_parallel
from rephraser.models.vllm_outputs import lora_request, plain_results

log = get_logger("rephraser.models.vllm")


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
        self.seed = int(seed)
        self.generation_config = _generation_config(pretrained, revision)
        config_max_new = generation_config_fields(self.generation_config).get("max_new_tokens")
        if config_max_new is not None:
            log.warning(
                "rephraser-vllm: %s's generation_config.json sets max_new_tokens=%s; it is not used here "
                "(max_gen_toks is, as in lm-eval's vllm backend), while HF generate (lm-eval's hf) lets it "
                "override max_gen_toks",
                pretrained,
                config_max_new,
            )

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
        prompts, params, stops = self._generation_inputs(requests)
        rows = self._run("generate", prompts, params, None, disable_tqdm)
        results = [self._text(ids, param, until) for ids, param, until in zip(rows, params, stops)]
        for request, text in zip(requests, results):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return results

    def _text(self, ids: list[int], param, until: list[str]) -> str:
        """The continuation as rephraser-hf makes it from the same ids: the tokens before the first end id, decoded
        by the tokenizer (vLLM's incremental detokenizer holds back an incomplete UTF-8 character at the end, which
        HF's decode shows as U+FFFD), cut before the earliest stop string."""
        ids = cut_at_stop_ids(ids, set(param.stop_token_ids or []))
        return cut_at_stops(self.tokenizer.decode(ids, skip_special_tokens=param.skip_special_tokens), until)

    def _generation_inputs(self, requests: list[Instance]) -> tuple[list, list, list[list[str]]]:
        """(prompts, SamplingParams, stop strings) per request, in request order: what every engine or rank gets."""
        from vllm import TokensPrompt

        eos_text = self.tokenizer.decode([self.eot_token_id], skip_special_tokens=False)
        prompts, params, stops = [], [], []
        for index, request in enumerate(requests):
            context, gen_kwargs = request.args
            settings = request_settings(gen_kwargs, self.max_gen_toks, eos_text)
            check_room(settings.max_gen_toks, self.max_length)
            ids = self.tok_encode(context)[-(self.max_length - settings.max_gen_toks) :]  # left truncation
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(self._sampling_params(settings, index))
            stops.append(settings.until)
        return prompts, params, stops

    def _sampling_params(self, settings, index: int):
        import inspect

        from vllm import SamplingParams

        kwargs = vllm_sampling_kwargs(
            settings.kwargs, self.generation_config, set(inspect.signature(SamplingParams).parameters)
        )
        if kwargs["temperature"] > 0:  # its own seed: independent of the other requests, the rank, the batch
            kwargs["seed"] = request_seed(kwargs.get("seed", self.seed), index)
        ends = stop_token_ids(self.tokenizer, settings.until, self.generation_config)
        return SamplingParams(
            **{
                "skip_special_tokens": True,
                **kwargs,
                "max_tokens": settings.max_gen_toks,
                "stop": [s for s in settings.until if s] or None,  # an EOS that decodes to "" would match at once
                "stop_token_ids": sorted(ends | set(kwargs.get("stop_token_ids") or [])),
            }
        )

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
                lora_request=lora_request(self.lora_local_path),
            )
            return plain_results(kind, outputs, spans)
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
