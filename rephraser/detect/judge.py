"""The study's LLM judge: "are these two the same question / program?", answered strictly True or False.

    judge = make_judge("openai", model="gpt-4o", api_base=URL, kind="code")      # or "vllm", model=DIR_OR_ID
    verdicts = judge.judge_pairs([(test_text, train_text), ...])                   # True / False / None per pair
    judge.stats -> {"pairs", "true", "false", "unparseable", "api_errors", "reasks", "truncated"}

The instruction is the study's for the kind (prompts/<kind>.txt: code, math, knowledge, number_substitution,
crosslingual); the pair goes in the user message as the study formatted it. A reply counts only if it is
exactly True or False (whitespace, case and a final period aside) and whole: a reply cut at max_tokens
(finish_reason "length", counted in `truncated`) is no verdict, whatever it starts with ("True, but ..." cut to
"True"). Anything else is asked again, at most `reasks` times, and then counted as unparseable: the verdict is
None, reported as such, never taken as False. pairs = true + false + unparseable + api_errors.
The openai judge uses rephraser.llm_client (concurrency, retries, timeouts, the key from the environment);
the vllm judge runs every pair of a round in one offline `LLM.chat` call.
"""

from __future__ import annotations

from pathlib import Path

from rephraser.config import check_choice
from rephraser.errors import ConfigError
from rephraser.llm_client import ChatClient, Reply

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
KINDS = ("code", "math", "knowledge", "number_substitution", "crosslingual")


def instruction(kind: str) -> str:
    check_choice("judge_kind", kind, KINDS)
    return (PROMPTS_DIR / f"{kind}.txt").read_text(encoding="utf-8").strip()


def pair_message(test: str, train: str) -> str:
    return "part1: {\n" + test + "\n}\npart2: {\n" + train + "\n}"


def parse_verdict(text: str | None) -> bool | None:
    word = (text or "").strip().rstrip(".").strip().lower()
    return {"true": True, "false": False}.get(word)


class Judge:
    def __init__(self, kind: str, reasks: int = 2):
        self.system = instruction(kind)
        self.reasks = reasks
        self.stats = {"pairs": 0, "true": 0, "false": 0, "unparseable": 0, "api_errors": 0, "reasks": 0, "truncated": 0}

    def _ask(self, conversations: list[list[dict]]) -> list[Reply]:
        raise NotImplementedError

    def judge_pairs(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        verdicts: list[bool | None] = [None] * len(pairs)
        pending = list(range(len(pairs)))
        self.stats["pairs"] += len(pairs)
        for round_ in range(self.reasks + 1):
            if not pending:
                break
            if round_:
                self.stats["reasks"] += len(pending)
            replies = self._ask(
                [
                    [{"role": "system", "content": self.system}, {"role": "user", "content": pair_message(*pairs[i])}]
                    for i in pending
                ]
            )
            still = []
            for i, reply in zip(pending, replies):
                if reply.error:
                    self.stats["api_errors"] += 1
                    continue  # a failed request is not an answer: no verdict, counted
                if reply.truncated:
                    self.stats["truncated"] += 1
                verdict = None if reply.truncated else parse_verdict(reply.text)
                if verdict is None:
                    still.append(i)
                else:
                    verdicts[i] = verdict
            pending = still
        self.stats["unparseable"] += len(pending)
        self.stats["true"] += sum(v is True for v in verdicts)
        self.stats["false"] += sum(v is False for v in verdicts)
        return verdicts


class OpenAIJudge(Judge):
    def __init__(
        self, kind: str, model: str, api_base: str, concurrency: int = 8, timeout_s: float = 60.0, reasks: int = 2
    ):
        super().__init__(kind, reasks)
        self.model = model
        self.client = ChatClient(api_base, model, concurrency=concurrency, timeout_s=timeout_s)

    def _ask(self, conversations):
        return self.client.chat_many(conversations, desc="judge", temperature=0.3, max_tokens=4)


class VLLMJudge(Judge):
    def __init__(self, kind: str, model: str, reasks: int = 2, seed: int = 0):
        super().__init__(kind, reasks)
        from vllm import LLM

        from rephraser.modelref import resolve_model

        self.model, self.seed = model, seed
        self.llm = LLM(model=resolve_model(model), seed=seed)
        self._round = 0

    def _ask(self, conversations):
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.3, max_tokens=4, seed=self.seed + self._round)
        self._round += 1
        outputs = self.llm.chat(conversations, sampling_params=params, use_tqdm=True)
        return [Reply(text=out.outputs[0].text, finish_reason=out.outputs[0].finish_reason) for out in outputs]


def make_judge(
    backend: str, model: str | None, api_base: str | None, kind: str, concurrency: int = 8, timeout_s: float = 60.0
) -> Judge:
    if not model:
        raise ConfigError("model: the judge needs --model")
    if backend == "openai":
        return OpenAIJudge(kind, model, api_base, concurrency, timeout_s)
    if backend == "vllm":
        return VLLMJudge(kind, model)
    raise ConfigError(f"judge: {backend!r} is not one of ['openai', 'vllm']")
