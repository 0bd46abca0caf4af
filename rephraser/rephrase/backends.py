"""Who rephrases: an OpenAI-compatible endpoint, vLLM's offline engine, or the offline Python rewriter.

    backend = make_backend(cfg)
    replies = backend.generate(items, conversations, attempt)     # vllm, code-ast: a Reply per item, in order
    for batch in backend.replies(items, conversations, attempt):  # openai: [(position, Reply), ...] as they arrive

openai: rephraser.llm_client (concurrency, retries, timeouts, key from the environment), one request per
pending item, each reply handed on as it arrives (a slow request holds back no other item). vllm: one
`LLM.chat` call for all pending items of an attempt, each with a seed of its own (seed + attempt and item), so
every retry samples anew and a rerun samples the same; a reply cut at max_tokens carries finish_reason "length".
code-ast: no model; attempt k uses the k-th, more conservative, rewriting variant, then breaks any shared run
that is still too long.
"""

from __future__ import annotations

from collections.abc import Iterator

from rephraser.llm_client import ChatClient, Reply


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg):
        self.model = cfg.model
        self.cfg = cfg
        self.client = ChatClient(cfg.api_base, cfg.model, concurrency=cfg.concurrency, timeout_s=cfg.timeout_s)

    def replies(self, items, conversations, attempt: int) -> Iterator[list[tuple[int, Reply]]]:
        return self.client.chat_stream(
            conversations,
            desc=f"rephrase, attempt {attempt + 1}",
            temperature=self.cfg.temperature,
            max_tokens=self.cfg.max_tokens,
            seed=self.cfg.seed + attempt,
        )

    def usage(self) -> dict:
        u = self.client.usage
        return {
            "requests": u.requests,
            "retries": u.retries,
            "retries_by_reason": u.by_reason,
            "failed_requests": u.failed,
            "truncated_replies": u.truncated,
            "malformed_replies": u.malformed,
            "retry_after_over_cap": u.retry_after_over_cap,
        }


class VLLMBackend:
    name = "vllm"

    def __init__(self, cfg):
        from vllm import LLM

        from rephraser.modelref import resolve_model

        self.cfg, self.model = cfg, cfg.model
        self.llm = LLM(model=resolve_model(cfg.model), seed=cfg.seed)
        self.truncated = 0

    def generate(self, items, conversations, attempt: int) -> list[Reply]:
        from vllm import SamplingParams

        params = [
            SamplingParams(
                temperature=self.cfg.temperature,
                max_tokens=self.cfg.max_tokens,
                seed=self.cfg.seed + 1_000_003 * attempt + item.index,
            )
            for item in items
        ]
        outputs = self.llm.chat(conversations, sampling_params=params, use_tqdm=True)
        replies = [
            Reply(
                text=out.outputs[0].text,
                finish_reason=out.outputs[0].finish_reason,  # "length": cut at max_tokens, a truncated attempt
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(out.outputs[0].token_ids),
                tries=1,
            )
            for out in outputs
        ]
        self.truncated += sum(r.truncated for r in replies)
        return replies

    def usage(self) -> dict:
        return {"truncated_replies": self.truncated}


class CodeAstBackend:
    name = "code-ast"
    model = "rephraser.rephrase.codeast"

    def __init__(self, cfg):
        self.cfg = cfg

    def generate(self, items, conversations, attempt: int) -> list[Reply]:
        from rephraser.overlap import OverlapMeter
        from rephraser.rephrase.codeast import VARIANTS, break_runs, rewrite_program

        replies = []
        for item in items:
            try:
                rewrite = rewrite_program(item.text, variant=min(attempt, VARIANTS - 1))
                text = break_runs(item.text, rewrite.text, self.cfg.max_shared_words, OverlapMeter(item.text))
                replies.append(Reply(text=text, tries=1))
            except (SyntaxError, ValueError, RecursionError) as e:
                replies.append(Reply(error=f"cannot rewrite: {type(e).__name__}: {e}", tries=1))
        return replies

    def usage(self) -> dict:
        return {}


BACKENDS = {"openai": OpenAIBackend, "vllm": VLLMBackend, "code-ast": CodeAstBackend}


def make_backend(cfg):
    return BACKENDS[cfg.backend](cfg)
