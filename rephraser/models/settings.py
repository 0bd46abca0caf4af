"""A request's generation settings as lm-eval's `hf` backend applies them, for `rephraser-hf` and `rephraser-vllm`.

    s = request_settings(gen_kwargs, default_max_gen_toks=256, eos_text="</s>")   # s.until, s.max_gen_toks, s.kwargs
    greedy_loop_refusal(s.kwargs, model.generation_config)  # None, or why the fast greedy loop would not do what
                                                            # HF generate does (then HFLM's own path runs it)
    vllm_sampling_kwargs(s.kwargs, generation_config, fields)  # SamplingParams keywords, or a ConfigError naming
                                                               # the setting vLLM cannot honour
    request_seed(1234, index)                                  # a sampled request's own seed

The reference is lm-eval's `hf` backend: its normalize_gen_kwargs (max_gen_toks and its aliases max_new_tokens,
max_tokens, max_completion_tokens; do_sample from the temperature when unset; until with the EOS text added), then
HF generate, which also applies the model's generation_config.json (a repetition_penalty there acts on greedy
decoding too) and, when sampling, transformers' defaults (top_k=50). A setting neither backend can honour is
refused; none is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from rephraser.errors import ConfigError

# HF generation settings that only act when sampling (do_sample=True): inert in greedy decoding.
SAMPLING_ONLY = {"temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff"}
# HF settings at the value where they change nothing (None means the same everywhere).
NEUTRAL = {
    "num_beams": 1,
    "num_return_sequences": 1,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "min_length": 0,
    "min_new_tokens": 0,
    "guidance_scale": 1.0,
    "penalty_alpha": 0.0,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "remove_invalid_values": False,
    "renormalize_logits": False,
    "token_healing": False,
    "use_mtp": False,
}
# Fields of a model's generation_config.json that do not change which tokens greedy decoding picks: token ids (the
# EOS ids are honoured as stops), max_length (lm-eval passes its own), do_sample (lm-eval always passes its own),
# cache and output plumbing, beam-only and assistant-only knobs.
CONFIG_INERT = {
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "max_length",
    "do_sample",
    "use_cache",
    "cache_implementation",
    "cache_config",
    "max_cache_len",
    "prefill_chunk_size",
    "compile_config",
    "disable_compile",
    "transformers_version",
    "_from_model_config",
    "output_attentions",
    "output_hidden_states",
    "output_scores",
    "output_logits",
    "return_dict_in_generate",
    "length_penalty",
    "early_stopping",
    "low_memory",
    "is_assistant",
    "num_assistant_tokens",
    "num_assistant_tokens_schedule",
    "assistant_confidence_threshold",
    "assistant_lookbehind",
    "target_lookbehind",
}
# transformers' own defaults for the sampling settings vLLM also has (GenerationConfig._get_default_generation_params
# in transformers 5; a test checks they still are): HF samples with top_k=50 unless told otherwise, vLLM without.
HF_SAMPLING_DEFAULTS = {"top_k": 50, "top_p": 1.0}
# generation_config.json's max_new_tokens overrides lm-eval's max_gen_toks in HF generate; rephraser-vllm keeps
# max_gen_toks, as lm-eval's vllm backend does, and says so once (RephraserVLLM.__init__).
CONFIG_LENGTH = {"max_new_tokens"}
# SamplingParams fields the backend's contract fixes, accepted from a request only at that value: (value, why).
VLLM_CONTRACT = {
    "n": (1, "one continuation per request is scored (lm-eval's `repeats` asks for more)"),
    "stop": (None, "give stop strings as `until`"),
    "include_stop_str_in_output": (False, "the continuation is cut before its stop, as in lm-eval's hf"),
    "detokenize": (True, "stop strings are found in the text"),
    "ignore_eos": (False, "every EOS id ends generation, as in rephraser-hf"),
}


@dataclass
class Settings:
    until: list[str]
    max_gen_toks: int
    kwargs: dict  # everything else, do_sample and temperature normalised as lm-eval does


def request_settings(gen_kwargs: dict, default_max_gen_toks: int, eos_text: str | None) -> Settings:
    """lm-eval's own normalisation (the same functions its hf and vllm backends call)."""
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

    kwargs = dict(normalize_gen_kwargs(gen_kwargs, default_max_gen_toks))
    until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
    return Settings(until=until, max_gen_toks=int(kwargs.pop("max_gen_toks")), kwargs=kwargs)


def check_room(max_gen_toks: int, max_length: int) -> None:
    """The prompt is left-truncated to max_length - max_gen_toks tokens: that must leave room for one."""
    if max_gen_toks >= max_length:
        raise ConfigError(
            f"max_gen_toks={max_gen_toks} leaves no room for the prompt in the model's max_length={max_length}: "
            "lower max_gen_toks or raise max_length / max_model_len"
        )


def generation_config_fields(generation_config) -> dict:
    """The fields a model's generation_config.json sets (transformers 5 leaves every other one None)."""
    if generation_config is None:
        return {}
    return {k: v for k, v in generation_config.to_diff_dict().items() if v is not None}


def _is_neutral(key: str, value) -> bool:
    return value is None or (key in NEUTRAL and value == NEUTRAL[key])


def greedy_loop_refusal(kwargs: dict, generation_config) -> str | None:
    """Why the plain greedy loop (argmax of the raw logits) would not pick the tokens HF generate picks for this
    request on this model, or None when it would."""
    if kwargs.get("do_sample"):
        return "do_sample=True"
    for key, value in kwargs.items():
        if key not in ("do_sample", *SAMPLING_ONLY) and not _is_neutral(key, value):
            return f"{key}={value!r}"
    for key, value in generation_config_fields(generation_config).items():
        if key not in kwargs and key not in CONFIG_INERT and key not in SAMPLING_ONLY and not _is_neutral(key, value):
            return f"generation_config.json {key}={value!r}"
    return None


def vllm_sampling_kwargs(kwargs: dict, generation_config, fields: set[str]) -> dict:
    """SamplingParams keywords (besides max_tokens, stop and stop_token_ids, which the backend sets) for what HF
    generate would do: the request's settings over the model's generation config over transformers' defaults.
    `fields` are SamplingParams' own: a vLLM setting passes through; an HF one vLLM lacks is refused unless it
    is at its neutral value."""
    request = dict(kwargs)
    sampling = bool(request.pop("do_sample", False))
    temperature = float(request.pop("temperature", 0.0) or 0.0)
    if sampling and temperature <= 0.0:  # lm-eval's hf backend fails on it too (HF: temperature must be > 0)
        raise ConfigError(
            f"do_sample=True needs a temperature > 0 (got {temperature}); for greedy decoding set do_sample=False"
        )
    config = {
        k: v
        for k, v in generation_config_fields(generation_config).items()
        if k not in CONFIG_INERT and k not in CONFIG_LENGTH
    }
    if not sampling:
        config = {k: v for k, v in config.items() if k not in SAMPLING_ONLY}
        request = {k: v for k, v in request.items() if k not in SAMPLING_ONLY}
    merged = {**(HF_SAMPLING_DEFAULTS if sampling else {}), **config, **request}
    out = {"temperature": temperature if sampling else 0.0}
    for key, value in merged.items():
        source = "generation_config.json " if key in config and key not in request else ""
        if key in VLLM_CONTRACT:
            fixed, why = VLLM_CONTRACT[key]
            if value != fixed:
                raise ConfigError(f"rephraser-vllm: {key}={value!r} is not supported ({key}={fixed!r}: {why})")
        elif key in fields and not key.startswith("_"):
            if value is not None:
                out[key] = value
        elif not _is_neutral(key, value):
            raise ConfigError(
                f"rephraser-vllm: {source}{key}={value!r} has no equivalent in vLLM's SamplingParams; "
                "use rephraser-hf (or lm-eval's hf) for it, or leave it out"
            )
    return out


def request_seed(base: int, index: int) -> int:
    """The seed of the index-th request of a call: an independent stream per (base, index) (numpy's SeedSequence),
    so lm-eval's repeats of one prompt (listed one after another) sample independently, whichever engine or
    data-parallel rank runs them."""
    import numpy as np

    return int(np.random.SeedSequence([int(base) % 2**64, int(index)]).generate_state(1, dtype=np.uint64)[0] >> 1)
