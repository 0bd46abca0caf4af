"""The one OpenAI-compatible chat client that `rephraser rephrase` and `rephraser detect` share.

    client = ChatClient(api_base="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct", concurrency=8)
    replies = client.chat_many([[{"role": "user", "content": "..."}], ...], desc="judge")    # in order
    for batch in client.chat_stream(conversations, desc="rephrase"):   # [(position, Reply), ...] as they arrive
        ...
    reply.text, reply.error, reply.truncated, client.usage

Any server that speaks the chat-completions API (`vllm serve`, hosted APIs) through the official `openai`
client. The key comes from OPENAI_API_KEY (for a local server without auth, any value, e.g. EMPTY); it is
redacted from every text this client hands back or logs (an error body may quote the Authorization header).

Retries are the openai client's own (`max_retries`): 408, 409, 429, 5xx, timeouts and dropped connections, with
exponential backoff and jitter, waiting what a Retry-After or retry-after-ms header asks. What it lacks is done
here, in rephraser.llm_http, under it: a deadline on the whole of each request (httpx's timeout only limits
the wait between two reads, so a server that trickles its reply would hold a request for ever); a cap on
Retry-After (a server asking for longer than `retry_after_cap_s` fails that request, counted and logged, instead
of sleeping for hours); failing fast (a server that cannot be reached before it ever answered, wrong --api-base or
server down, stops the run with one line, EndpointUnreachable; so does a rejected key, 401/403, and a 404 before
any reply); and the counts in `usage` (every HTTP request, and why each retry was made).

A reply is read from the raw JSON body and checked here (the client's response models do not validate): a body
that is not JSON, has no choice or no message, or whose content is neither text nor a list of text parts (joined,
a valid OpenAI format) is a failed request (`error`), not a crash. A reply cut at max_tokens (finish_reason
"length") comes back with `truncated` set: the caller must not take it as a whole answer. A request that still
fails after its retries comes back with `error` set: the caller records it, never treats it as an answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from rephraser.errors import ConfigError, RephraserError

KEY_ENV = "OPENAI_API_KEY"


class EndpointUnreachable(RephraserError):
    """The endpoint cannot be reached (or refuses the key): nothing can be done until that is fixed."""


@dataclass
class Reply:
    text: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tries: int = 0

    @property
    def truncated(self) -> bool:
        """Cut at the length limit (finish_reason "length"): not a whole answer, whatever its text says."""
        return self.error is None and self.finish_reason == "length"


@dataclass
class Usage:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    failed: int = 0  # conversations that got no reply (after their retries)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0  # replies cut at max_tokens
    malformed: int = 0  # 200 replies that were not a readable chat completion
    retry_after_over_cap: int = 0  # requests failed because the server asked to wait longer than the cap
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


BEARER = re.compile(r"(?i)\b(bearer)\s+(?!\[redacted\])[^\s\"',;}\]]+")
# Shorter values are placeholders for servers without auth (EMPTY, x): replacing them would mangle texts.
MIN_SECRET_LEN = 8


def redact(text: str | None, key: str, bearer: bool = True) -> str | None:
    """`text` without the key; with `bearer`, without any bearer token either (an error body that quotes the
    Authorization header). Replies are redacted of the key only: "the bearer of bad news" is a fine rephrase."""
    if not text:
        return text
    if len(key) >= MIN_SECRET_LEN:
        text = text.replace(key, "[redacted]")
    return BEARER.sub(r"\1 [redacted]", text) if bearer else text


class ChatClient:
    def __init__(
        self,
        api_base: str,
        model: str,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        retry_after_cap_s: float = 60.0,
    ):
        if not api_base:
            raise ConfigError("api_base: give the endpoint, e.g. --api-base http://127.0.0.1:8000/v1")
        if not model:
            raise ConfigError("model: give the endpoint's model name (--model)")
        self.api_base, self.model = api_base, model
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        self.retry_after_cap_s = retry_after_cap_s
        self.key = api_key()
        self.usage = Usage()
        self.reached = False  # has the server ever answered? (then a dropped connection is transient)
        self.replied = False  # has a request ever succeeded? (then a 404 is not a wrong --api-base)

    def redact(self, text: str | None) -> str | None:
        return redact(text, self.key)

    def chat_many(self, conversations: list[list[dict]], desc: str = "requests", **sampling) -> list[Reply]:
        """One chat completion per conversation, `concurrency` at a time; replies in the same order."""
        replies: list[Reply] = [Reply()] * len(conversations)
        for batch in self.chat_stream(conversations, desc, **sampling):
            for k, reply in batch:
                replies[k] = reply
        return replies

    def chat_stream(
        self, conversations: list[list[dict]], desc: str = "requests", **sampling
    ) -> Iterator[list[tuple[int, Reply]]]:
        """The replies as they arrive, each batch all that came in since the last: [(position, Reply), ...].

        The requests run on an event loop in a thread of their own, so the caller may take its time with a
        batch (run programs, write records) while the other requests stay in flight. Closing the generator
        early (an error in the caller) cancels what is still in flight."""
        if not conversations:
            return
        arrived: queue.SimpleQueue = queue.SimpleQueue()
        loop = asyncio.new_event_loop()
        task = loop.create_task(self._all(conversations, desc, sampling, arrived.put))
        thread = threading.Thread(target=_run, args=(loop, task, arrived.put), name="llm-client", daemon=True)
        thread.start()
        try:
            left = len(conversations)
            while left:
                batch = [arrived.get()]
                while True:
                    try:
                        batch.append(arrived.get_nowait())
                    except queue.Empty:
                        break
                for got in batch:
                    if isinstance(got, BaseException):
                        raise got
                left -= len(batch)
                yield batch
        finally:
            if thread.is_alive():
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop closed in the meantime: nothing left to cancel
                    pass
            thread.join()

    async def _all(self, conversations, desc, sampling, put) -> None:
        import openai

        from rephraser.llm_http import DeadlineHttpClient  # imports openai: only when requests are made

        client = openai.AsyncOpenAI(
            base_url=self.api_base,
            api_key=self.key,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
            http_client=DeadlineHttpClient(self),
        )
        gate = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(conversations), desc=desc, unit=" req", disable=None, dynamic_ncols=True)

        async def one(k, messages):
            async with gate:
                reply = await self._request(client, messages, sampling)
            put((k, reply))
            bar.update(1)
            bar.set_postfix(retries=self.usage.retries, failed=self.usage.failed)

        try:
            await asyncio.gather(*(one(k, m) for k, m in enumerate(conversations)))
        finally:
            bar.close()
            await client.close()

    async def _request(self, client, messages, sampling) -> Reply:
        import openai

        from rephraser.llm_http import RetryAfterTooLong, Unreachable, attempts

        tries: list[str] = []  # the outcome of every HTTP request of this conversation (llm_http's notes)
        attempts.set(tries)
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, **sampling
            )
        except Unreachable as e:
            cause = self.first_line(e.args[0] if e.args else e)
            raise EndpointUnreachable(
                f"cannot reach {self.api_base}: {cause} (is the server up, and --api-base right?)"
            ) from None
        except RetryAfterTooLong as e:
            return self._failed(str(e), tries)
        except openai.APITimeoutError:
            return self._failed(f"gave up after {len(tries)} tries: no whole reply within {self.timeout_s:g} s", tries)
        except openai.APIConnectionError as e:
            return self._failed(f"gave up after {len(tries)} tries: {self.first_line(e.__cause__ or e)}", tries)
        except openai.APIStatusError as e:
            self._refuse_if_misconfigured(e)
            after = f" (after {len(tries)} tries)" if len(tries) > 1 else ""
            return self._failed(f"HTTP {e.status_code}{after}: {self.first_line(e)}", tries)
        finally:
            for reason in tries[:-1]:  # every request but the last was retried
                self.usage.add_retry(reason)
        reply = self._parse(raw.content)
        reply.tries = len(tries)
        return reply

    def _refuse_if_misconfigured(self, e) -> None:
        if e.status_code in (401, 403):
            raise EndpointUnreachable(f"{self.api_base} refused the key from {KEY_ENV} (HTTP {e.status_code})")
        if e.status_code == 404 and not self.replied:
            raise EndpointUnreachable(
                f"{self.api_base} answered 404 ({self.first_line(e)}): is --api-base right (it usually ends in "
                f"/v1), and is {self.model!r} a model it serves?"
            )

    def _failed(self, error: str, tries: list[str]) -> Reply:
        self.usage.failed += 1
        return Reply(error=self.redact(error), tries=len(tries))

    def _parse(self, body: bytes) -> Reply:
        """A chat-completion body, checked by hand: any shape but the expected one is a failed request."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._malformed(f"not JSON: {body[:80]!r}")
        if not isinstance(data, dict):
            return self._malformed(f"a JSON {type(data).__name__}, not an object")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = {k: _count(usage.get(k)) for k in ("prompt_tokens", "completion_tokens")}
        self.usage.prompt_tokens += tokens["prompt_tokens"]
        self.usage.completion_tokens += tokens["completion_tokens"]
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return self._malformed("no choices", **tokens)
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            return self._malformed("a choice without a message", **tokens)
        text, problem = _content_text(message)
        if problem:
            return self._malformed(problem, **tokens)
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            self.usage.failed += 1
            return Reply(error="the endpoint's content filter stopped the reply", finish_reason=finish, **tokens)
        self.replied = True
        if finish == "length":
            self.usage.truncated += 1
        return Reply(text=redact(text, self.key, bearer=False), finish_reason=finish, **tokens)

    def _malformed(self, what: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> Reply:
        self.usage.malformed += 1
        self.usage.failed += 1
        return Reply(
            error=self.redact(f"malformed reply: {what}"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def first_line(self, error: BaseException) -> str:
        text = self.redact(str(error).strip()) or ""  # redacted before it is cut: never half a key
        return text.splitlines()[0][:200] if text else type(error).__name__


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _content_text(message: dict) -> tuple[str | None, str | None]:
    """(text, None), or (None, what is wrong). Content may be a string or a list of text parts (joined in order)."""
    content = message.get("content")
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):
        kinds = [p.get("type") if isinstance(p, dict) else type(p).__name__ for p in content]
        if content and all(k == "text" and isinstance(p.get("text"), str) for k, p in zip(kinds, content)):
            return "".join(p["text"] for p in content), None
        return None, f"content parts that are not all text ({', '.join(map(str, kinds)) or 'none'})"
    if content is None:
        refusal = message.get("refusal")
        return None, f"the model refused: {str(refusal)[:200]}" if refusal else "the reply had no text"
    return None, f"content is a {type(content).__name__}, not text"


def _run(loop: asyncio.AbstractEventLoop, task: asyncio.Task, put) -> None:
    """The thread of chat_stream: run the requests; an exception goes to the caller's thread, raised there."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(task)
    except BaseException as e:
        put(e)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
