"""The HTTP client under the openai client of rephraser.llm_client: what openai's own handling lacks.

    http = DeadlineHttpClient(chat_client)             # an openai.DefaultAsyncHttpxClient
    openai.AsyncOpenAI(..., max_retries=6, http_client=http)

Every HTTP request the openai client sends, each of its retries included, passes through `send` here:

- a deadline on the whole request (connect, send, headers and the whole body) of `timeout_s`: httpx's own timeout
  only bounds each wait between two reads, so a server that trickles its reply would hold a request for ever.
  Past the deadline the request ends as a timeout, which the openai client retries like any other.
- a cap on Retry-After: a retryable answer (408, 409, 429, 5xx) that asks to wait longer than `retry_after_cap_s`
  raises RetryAfterTooLong, counted in usage and logged (once per client). The openai client passes it through
  unretried (it is not an httpx error). openai 3.57 sleeps up to 120 s and gives up beyond; older releases fell
  back to their own backoff past 60 s: neither fails at a cap we choose, nor says so.
- failing fast: a connection error before the server ever answered (wrong --api-base, server down) raises
  Unreachable, never retried (rephraser.llm_client turns it into EndpointUnreachable, which stops the run).
- notes: the outcome of each request ("ok", "http_429", "timeout", "connection") is appended to the list in
  `attempts` (a context variable the caller sets per conversation, so concurrent requests keep theirs apart):
  the counts of retries and their reasons come from it.

The openai client's idea of which answers to retry is not changed here; Retry-After values it cannot read
("soon") leave it to its own backoff.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from contextvars import ContextVar

import httpx2
import openai

from rephraser.log import get_logger

RETRYABLE = (408, 409, 429)  # and every 5xx: what the openai client retries

log = get_logger("rephraser.llm_client")
attempts: ContextVar[list | None] = ContextVar("rephraser_llm_attempts", default=None)


class Unreachable(Exception):
    """A connection error before the server ever answered: retrying will not help."""


class RetryAfterTooLong(Exception):
    """The server asked to wait longer than the cap before retrying: this request fails now."""


def retry_after_seconds(headers) -> float | None:
    """Seconds a retry-after-ms or Retry-After header (a number or an HTTP date) asks for; None when there is
    none or it cannot be read (never raises: a header such as "soon" must not stop a batch)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        return None if math.isnan(seconds) else seconds
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return when.timestamp() - time.time()  # a date without a zone is taken as local time (RFC 9110: GMT)
    except (OverflowError, OSError, ValueError):
        return None


class DeadlineHttpClient(openai.DefaultAsyncHttpxClient):
    def __init__(self, chat, **kwargs):
        # No connection limit of its own: the chat client's semaphore keeps `concurrency` requests in flight,
        # and a request waiting for a pooled connection would spend its deadline waiting.
        kwargs.setdefault("limits", httpx2.Limits(max_connections=None, max_keepalive_connections=chat.concurrency))
        super().__init__(**kwargs)
        self.chat = chat

    async def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs) -> httpx2.Response:
        chat = self.chat
        chat.usage.requests += 1
        notes = attempts.get()
        note = notes.append if notes is not None else _ignore
        try:
            async with asyncio.timeout(chat.timeout_s):
                response = await super().send(request, stream=stream, **kwargs)
                if stream:  # the body is read within the deadline too
                    await response.aread()
        except TimeoutError:  # asyncio.timeout's: the deadline passed
            note("timeout")
            raise httpx2.ReadTimeout(f"no whole reply within {chat.timeout_s:g} s", request=request) from None
        except httpx2.TimeoutException:
            note("timeout")
            raise
        except httpx2.TransportError as e:
            note("connection")
            if not chat.reached:
                raise Unreachable(e) from None
            raise
        chat.reached = True
        status = response.status_code
        note("ok" if status < 400 else f"http_{status}")
        if status in RETRYABLE or status >= 500:
            wait = retry_after_seconds(response.headers)
            if wait is not None and wait > chat.retry_after_cap_s:
                self._over_cap(status, wait)
        return response

    def _over_cap(self, status: int, wait: float) -> None:
        chat = self.chat
        chat.usage.retry_after_over_cap += 1
        if chat.usage.retry_after_over_cap == 1:
            log.warning(
                "%s asked to wait %.0f s before retrying (HTTP %d, Retry-After), more than the cap of %g s: such "
                "requests fail (counted in the report as retry_after_over_cap)",
                chat.api_base,
                wait,
                status,
                chat.retry_after_cap_s,
            )
        raise RetryAfterTooLong(
            f"HTTP {status}: the server asked to wait {wait:.0f} s before retrying (Retry-After), more than the cap "
            f"of {chat.retry_after_cap_s:g} s: not retried"
        )


def _ignore(_note: str) -> None:
    pass
