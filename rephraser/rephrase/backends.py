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
    """No model. Attempt k proposes the first of the rewriting variants k, k+1, ... (codeast.py, each more
    conservative) that the differential check finds computing what the original computes (differential.py:
    both programs on the tests' inputs and generated ones, one sandboxed program per rewrite, all rewrites of
    a round in one batch on one Sandbox pool); when none does, an error reply that says why for each variant.
    usage()["differential"] counts the checks, the rejections (with their reasons) and the fallbacks."""

    name = "code-ast"
    model = "rephraser.rephrase.codeast"  # no model: the offline rewriter

    def __init__(self, cfg):
        from rephraser.errors import ConfigError

        if not cfg.confirm_run_unsafe_code:  # RephraseConfig refuses this earlier; never run code without it
            raise ConfigError("confirm_run_unsafe_code: code-ast runs each rewrite beside the original (sandboxed)")
        self.cfg = cfg
        self._checker = None
        self._verdicts: dict[tuple[str, str], object] = {}  # (task id, text) -> Verdict: retries repeat texts
        self.stats = {"checked": 0, "rejected": 0, "fell_back": 0, "no_rewrite": 0, "rejections": []}

    def generate(self, items, conversations, attempt: int) -> list[Reply]:
        from rephraser.rephrase.codeast.rewrite import VARIANTS

        first = min(attempt, VARIANTS - 1)
        replies: list[Reply | None] = [None] * len(items)
        why: list[list[str]] = [[] for _ in items]
        pending = list(range(len(items)))
        for variant in range(first, VARIANTS):
            cases = {k: case for k in pending if (case := self._case(items[k], variant, why[k])) is not None}
            for k, verdict in zip(cases, self._check(list(cases.values()), variant)):
                if verdict.same:
                    replies[k] = Reply(text=cases[k].rewrite, tries=1)
                    self.stats["fell_back"] += variant > first
                else:
                    why[k].append(f"variant {variant}: {verdict.reason}")
            pending = [k for k in pending if replies[k] is None]
            if not pending:
                break
        for k in pending:
            self.stats["no_rewrite"] += 1
            replies[k] = Reply(error="no rewrite computes what the original does: " + "; ".join(why[k]), tries=1)
        return replies

    def _case(self, item, variant: int, why: list[str]):
        from rephraser.overlap import OverlapMeter
        from rephraser.rephrase.codeast.differential import Case
        from rephraser.rephrase.codeast.rewrite import break_runs, rewrite_program, test_names

        try:
            rewrite = rewrite_program(item.text, variant=variant, reserved=test_names(item.doc["test"]))
            text = break_runs(item.text, rewrite.text, self.cfg.max_shared_words, OverlapMeter(item.text))
        except (SyntaxError, ValueError, RecursionError) as e:
            why.append(f"variant {variant}: cannot rewrite: {type(e).__name__}: {e}")
            return None
        entry = item.doc["entry_point"]
        return Case(item.id, item.text, entry, text, rewrite.renamed.get(entry, entry), item.doc["test"])

    def _check(self, cases: list, variant: int) -> list:
        """Verdicts for the cases; the ones not seen before are checked together, in one sandbox batch."""
        import weakref

        from rephraser.rephrase.codeast.differential import DifferentialChecker

        fresh = list(
            {(c.task_id, c.rewrite): c for c in cases if (c.task_id, c.rewrite) not in self._verdicts}.values()
        )
        if fresh:
            if self._checker is None:
                self._checker = DifferentialChecker(consent=self.cfg.confirm_run_unsafe_code)
                weakref.finalize(self, self._checker.close)  # run.py does not close backends
            for case, verdict in zip(fresh, self._checker.check(fresh)):
                self._verdicts[(case.task_id, case.rewrite)] = verdict
                self.stats["checked"] += 1
                if not verdict.same:
                    self.stats["rejected"] += 1
                    self.stats["rejections"].append({"id": case.task_id, "variant": variant, "reason": verdict.reason})
        return [self._verdicts[(c.task_id, c.rewrite)] for c in cases]

    def usage(self) -> dict:
        return {"differential": {**self.stats, "rejections": list(self.stats["rejections"])}}

    def close(self) -> None:
        if self._checker is not None:
            self._checker.close()


BACKENDS = {"openai": OpenAIBackend, "vllm": VLLMBackend, "code-ast": CodeAstBackend}


def make_backend(cfg):
    return BACKENDS[cfg.backend](cfg)
