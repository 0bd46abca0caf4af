"""The one OpenAI-compatible chat client that `rephraser rephrase` and `rephraser detect` share.

    client = ChatClient(api_base="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct", concurrency=8)
    replies = client.chat_many([[{"role": "user", "content": "..."}], ...], desc="rephrase")   # in order
    replies[0].text, replies[0].error, client.usage

Any server that speaks the chat-completions API (`vllm serve`, hosted APIs) through the official `openai`
client. The key comes from OPENAI_API_KEY (for a local server without auth, any value, e.g. EMPTY) and is
never logged or written anywhere. `concurrency` requests are in flight at once; each has a timeout;
429, 5xx, 408/409 and timeouts are retried with exponential backoff and full jitter, waiting at least what a
Retry-After header asks. The client's own retries are off (max_retries=0) so that this policy, and the
counts in `usage`, are the only ones. A server that cannot be reached before any request has succeeded
(wrong --api-base, server down) stops the run at once with one line (EndpointUnreachable); so does a
rejected key (401/403). A request that still fails after its retries comes back as a Reply with `error`
set: the caller records it, never treats it as an answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from rephraser.errors import ConfigError, RephraserError

KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUSES = (408, 409, 429)


class EndpointUnreachable(RephraserError):
    """The endpoint cannot be reached (or refuses the key): nothing can be done until that is fixed."""


@dataclass
class Reply:
    text: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tries: int = 0


@dataclass
class Usage:
    requests: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_reason: dict = field(default_factory=dict)

    def add_retry(self, reason: str) -> None:
        self.retries += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1


def api_key() -> str:
    key = os.environ.get(KEY_ENV)
    if not key:
        raise ConfigError(
            f"{KEY_ENV} is not set: export the endpoint's key (for a local `vllm serve` without "
            f"auth any value works, e.g. {KEY_ENV}=EMPTY)"
        )
    return key


def retry_after_seconds(response) -> float | None:
    """Seconds a Retry-After (or retry-after-ms) header asks for, if any."""
    if response is None:
        return None
    headers = response.headers
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class ChatClient:
    def __init__(
        self,
        api_base: str,
        model: str,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        backoff_cap_s: float = 30.0,
    ):
        from openai import AsyncOpenAI

        if not api_base:
            raise ConfigError("api_base: give the endpoint, e.g. --api-base http://127.0.0.1:8000/v1")
        if not model:
            raise ConfigError("model: give the endpoint's model name (--model)")
        self.api_base, self.model = api_base, model
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_s, self.backoff_cap_s = backoff_s, backoff_cap_s
        self._client_args = dict(base_url=api_base, api_key=api_key(), max_retries=0, timeout=timeout_s)
        self._client_cls = AsyncOpenAI
        self.usage = Usage()
        self.reached = False  # has any request succeeded? (then connection errors are transient)

    def chat_many(self, conversations: list[list[dict]], desc: str = "requests", **sampling) -> list[Reply]:
        """One chat completion per conversation, `concurrency` at a time; replies in the same order."""
        if not conversations:
            return []
        return asyncio.run(self._all(conversations, desc, sampling))

    async def _all(self, conversations, desc, sampling) -> list[Reply]:
        client = self._client_cls(**self._client_args)
        gate = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(conversations), desc=desc, unit=" req", disable=None, dynamic_ncols=True)

        async def one(messages):
            async with gate:
                reply = await self._with_retries(client, messages, sampling)
            bar.update(1)
            bar.set_postfix(retries=self.usage.retries, failed=self.usage.failed)
            return reply

        try:
            return list(await asyncio.gather(*(one(m) for m in conversations)))
        finally:
            bar.close()
            await client.close()

    async def _with_retries(self, client, messages, sampling) -> Reply:
        import openai

        last = ""
        for attempt in range(self.max_retries + 1):
            self.usage.requests += 1
            try:
                response = await client.chat.completions.create(model=self.model, messages=messages, **sampling)
            except openai.APITimeoutError:
                reason, wait_hint, last = "timeout", None, "timed out"
            except openai.APIConnectionError as e:
                if not self.reached:
                    raise EndpointUnreachable(
                        f"cannot reach {self.api_base}: {_first_line(e)} (is the server up, and --api-base right?)"
                    ) from None
                reason, wait_hint, last = "connection", None, _first_line(e)
            except openai.APIStatusError as e:
                if e.status_code in (401, 403):
                    raise EndpointUnreachable(
                        f"{self.api_base} refused the key from {KEY_ENV} (HTTP {e.status_code})"
                    ) from None
                if e.status_code not in RETRY_STATUSES and e.status_code < 500:
                    self.usage.failed += 1
                    return Reply(error=f"HTTP {e.status_code}: {_first_line(e)}", tries=attempt + 1)
                reason, wait_hint, last = (
                    f"http_{e.status_code}",
                    retry_after_seconds(e.response),
                    f"HTTP {e.status_code}",
                )
            else:
                self.reached = True
                return self._reply(response, attempt + 1)
            if attempt == self.max_retries:
                break
            self.usage.add_retry(reason)
            await asyncio.sleep(self._backoff(attempt, wait_hint))
        self.usage.failed += 1
        return Reply(error=f"gave up after {self.max_retries + 1} tries: {last}", tries=self.max_retries + 1)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter (uniform in [0, base * 2^attempt], capped), never shorter than Retry-After."""
        jittered = random.uniform(0, min(self.backoff_cap_s, self.backoff_s * 2**attempt))
        return max(jittered, retry_after or 0.0)

    def _reply(self, response, tries: int) -> Reply:
        usage = getattr(response, "usage", None)
        prompt, completion = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        text = response.choices[0].message.content if response.choices else None
        if text is None:
            self.usage.failed += 1
            return Reply(error="the reply had no text", prompt_tokens=prompt, completion_tokens=completion, tries=tries)
        return Reply(text=text, prompt_tokens=prompt, completion_tokens=completion, tries=tries)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
