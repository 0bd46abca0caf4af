"""rephraser.llm_client against a loopback server that misbehaves (tests/fake_openai.py): every test names the
misbehaviour. In-process and quick: the server is a thread, the client the real openai client over real sockets."""

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from fake_openai import FakeOpenAI, within

from rephraser.llm_client import ChatClient, EndpointUnreachable

KEY = "client-key-5ecret-0123"


class Plan:
    """respond(messages) for FakeOpenAI: the conversation's last message names its plan, a list of answers (the
    k-th request for it gets answers[k], the last one repeated); counts what was asked, and how many at once."""

    def __init__(self, plans: dict, latency: float = 0.0):
        self.plans, self.latency = plans, latency
        self.asked: dict[str, int] = {}
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, messages):
        name = messages[-1]["content"]
        with self.lock:
            k = self.asked[name] = self.asked.get(name, -1) + 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.latency)
        with self.lock:
            self.in_flight -= 1
        answers = self.plans[name]
        return answers[min(k, len(answers) - 1)]


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    servers = []

    def start(plans: dict, latency: float = 0.0, **client_args):
        plan = Plan(plans, latency)
        server = FakeOpenAI(respond=plan, key=KEY).start()
        servers.append(server)
        args = {"concurrency": 4, "timeout_s": 2.0, "max_retries": 2, **client_args}
        return ChatClient(server.url, "m", **args), plan

    yield start
    for server in servers:
        server.stop()


def ask(client, *names, **sampling):
    return client.chat_many([[{"role": "user", "content": n}] for n in names], **sampling)


def completion(message: dict, finish_reason="stop") -> str:
    return json.dumps({"choices": [{"index": 0, "finish_reason": finish_reason, "message": message}]})


# --- Retry-After ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_unparseable_retry_after_soon_falls_back_to_backoff(serve):
    client, plan = serve({"a": [("status", 429, "soon"), "fine"], "b": ["also fine"]})
    replies = within(30, lambda: ask(client, "a", "b"))
    assert [r.text for r in replies] == ["fine", "also fine"]
    assert client.usage.by_reason == {"http_429": 1} and client.usage.failed == 0


def test_retry_after_100000_s_fails_the_request_at_the_cap_and_says_so(serve):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("rephraser").addHandler(handler)
    try:
        client, plan = serve({"a": [("status", 429, 100000)], "b": [("status", 503, 100000)], "c": ["fine"]})
        start = time.monotonic()
        replies = within(30, lambda: ask(client, "a", "b", "c"))
    finally:
        logging.getLogger("rephraser").removeHandler(handler)
    assert time.monotonic() - start < 10
    assert "asked to wait 100000 s" in replies[0].error and "cap of 60 s" in replies[0].error
    assert replies[1].error.startswith("HTTP 503") and replies[2].text == "fine"
    assert plan.asked == {"a": 0, "b": 0, "c": 0}  # asked once each: not retried
    assert client.usage.retry_after_over_cap == 2 and client.usage.failed == 2
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "more than the cap of 60 s" in warnings[0]  # said once, counted for each


def test_retry_after_within_the_cap_is_waited_for(serve):
    client, plan = serve({"a": [("status", 429, 2), "fine"]})
    start = time.monotonic()
    assert ask(client, "a")[0].text == "fine"
    assert 2.0 <= time.monotonic() - start < 10 and client.usage.by_reason == {"http_429": 1}


@pytest.mark.parametrize(
    "headers, seconds",
    [
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "-3"}, -3.0),  # the client then uses its own backoff
        ({"retry-after": "100000"}, 100000.0),
        ({"retry-after": "inf"}, float("inf")),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "later", "retry-after": "7"}, 7.0),
        ({"retry-after": "Mon, 99 Foo 2024 25:61:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_values(headers, seconds):
    from rephraser.llm_http import retry_after_seconds

    assert retry_after_seconds(headers) == seconds


def test_retry_after_as_an_http_date():
    from rephraser.llm_http import retry_after_seconds

    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    assert 3590 < retry_after_seconds({"retry-after": in_an_hour}) <= 3600


# --- deadline, fail fast, counts, concurrency ------------------------------------------------------------------


def test_trickled_reply_hits_the_whole_request_deadline(serve):
    """A server that sends its body a few bytes at a time, never idle for the (inactivity) read timeout."""
    client, plan = serve({"a": [("trickle", 30, "slow"), "fast"], "b": [("trickle", 30, "slow")]}, timeout_s=1.0)
    client.max_retries = 1
    start = time.monotonic()
    replies = within(20, lambda: ask(client, "a", "b"))
    assert time.monotonic() - start < 8
    assert replies[0].text == "fast" and replies[0].tries == 2
    assert replies[1].error == "gave up after 2 tries: no whole reply within 1 s"
    assert client.usage.by_reason == {"timeout": 2} and client.usage.requests == 4


def test_dead_endpoint_fails_at_once_without_retries(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=6)
    start = time.monotonic()
    with pytest.raises(EndpointUnreachable, match=f"cannot reach http://127.0.0.1:{port}/v1"):
        within(30, lambda: ask(client, "a", "b"))
    assert time.monotonic() - start < 5 and client.usage.requests <= 2


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_stops_the_run(serve, status):
    client, _ = serve({"a": [("status", status, None)]})
    with pytest.raises(EndpointUnreachable, match=f"refused the key from OPENAI_API_KEY \\(HTTP {status}\\)"):
        ask(client, "a")


def test_404_before_any_reply_is_a_wrong_api_base_or_model(serve):
    client, _ = serve({"a": [("status", 404, None)]})
    with pytest.raises(EndpointUnreachable, match="answered 404 .* is --api-base right"):
        ask(client, "a")


def test_counts_of_requests_and_retries_by_reason_are_exact(serve):
    """Retries of concurrent conversations are counted apart (each conversation's attempts are its own)."""
    client, plan = serve(
        {
            "r429": [("status", 429, "0.2"), "ok"],
            "r500": [("status", 500, None), ("status", 502, None), "ok"],
            "hang": [("hang", 3), "ok"],
            "gone": [("status", 500, None)],
            "fine": ["ok"],
        },
        timeout_s=1.0,
    )
    replies = within(60, lambda: ask(client, "r429", "r500", "hang", "gone", "fine"))
    assert [r.text for r in replies] == ["ok", "ok", "ok", None, "ok"]
    assert [r.tries for r in replies] == [2, 3, 2, 3, 1]
    u = client.usage
    assert u.requests == 11 and u.retries == 6 and u.failed == 1
    assert u.by_reason == {"http_429": 1, "http_500": 3, "http_502": 1, "timeout": 1}
    assert replies[3].error.startswith("HTTP 500 (after 3 tries)")


def test_concurrency_requests_are_in_flight_at_once(serve):
    client, plan = serve({f"q{k}": ["ok"] for k in range(8)}, latency=0.5, concurrency=4)
    start = time.monotonic()
    replies = ask(client, *[f"q{k}" for k in range(8)])
    assert all(r.text == "ok" for r in replies) and plan.most_in_flight == 4
    assert time.monotonic() - start < 3.5  # two waves of 0.5 s (plus the client's start), not eight


# --- replies: truncated, malformed, the key ---------------------------------------------------------------------


def test_reply_cut_at_max_tokens_is_flagged_truncated(serve):
    client, _ = serve({"a": [("length", "half a sen")], "b": ["whole"]})
    replies = ask(client, "a", "b")
    assert replies[0].truncated and replies[0].text == "half a sen" and not replies[1].truncated
    assert client.usage.truncated == 1 and client.usage.failed == 0


@pytest.mark.parametrize(
    "body, content_type, what",
    [
        ('{"choices": [{"index": 0, "message": {"content": "cut', "application/json", "not JSON"),
        ("<html><body>502 Bad Gateway</body></html>", "text/html", "not JSON"),
        ('["a", "list"]', "application/json", "a JSON list"),
        ('{"choices": []}', "application/json", "no choices"),
        ('{"object": "error"}', "application/json", "no choices"),
        ('{"choices": [{"index": 0, "finish_reason": "stop"}]}', "application/json", "a choice without a message"),
        (completion({"role": "assistant", "content": None}), "application/json", "the reply had no text"),
        (completion({"role": "assistant", "content": {"text": "x"}}), "application/json", "content is a dict"),
        (
            completion({"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}),
            "application/json",
            "content parts that are not all text (image_url)",
        ),
        (
            completion({"role": "assistant", "content": None, "refusal": "I cannot"}),
            "application/json",
            "the model refused: I cannot",
        ),
    ],
)
def test_malformed_200_reply_is_a_failed_request_not_a_crash(serve, body, content_type, what):
    client, _ = serve({"bad": [("raw", 200, content_type, body)], "good": ["fine"]})
    replies = ask(client, "bad", "good")
    assert replies[0].text is None and replies[0].error.startswith(f"malformed reply: {what}")
    assert replies[1].text == "fine"
    assert client.usage.malformed == 1 and client.usage.failed == 1


def test_content_as_a_list_of_text_parts_is_joined(serve):
    parts = [{"type": "text", "text": "Two "}, {"type": "text", "text": "parts."}]
    client, _ = serve({"a": [("raw", 200, "application/json", completion({"role": "assistant", "content": parts}))]})
    reply = ask(client, "a")[0]
    assert reply.text == "Two parts." and reply.error is None


def test_content_filter_stop_is_no_reply(serve):
    body = completion({"role": "assistant", "content": "Half"}, finish_reason="content_filter")
    client, _ = serve({"a": [("raw", 200, "application/json", body)]})
    reply = ask(client, "a")[0]
    assert reply.text is None and "content filter" in reply.error


@pytest.mark.parametrize("status", [400, 500])
def test_error_body_quoting_the_authorization_header_is_redacted(serve, status):
    client, _ = serve({"a": [("echo_auth", status)]})
    reply = ask(client, "a")[0]
    assert KEY not in reply.error and KEY[:8] not in reply.error
    assert "Authorization: Bearer [redacted]" in reply.error


def test_key_in_a_reply_text_is_redacted_and_the_word_bearer_is_kept(serve):
    client, _ = serve({"a": [f"the bearer of the key {KEY} says hi"]})
    assert ask(client, "a")[0].text == "the bearer of the key [redacted] says hi"


# --- the stream -----------------------------------------------------------------------------------------------


def test_stream_hands_on_each_reply_as_it_arrives(serve):
    client, _ = serve({"slow": [("hang", 3)], "a": ["a"], "b": ["b"]}, timeout_s=10.0)
    start = time.monotonic()
    seen = []
    for batch in client.chat_stream([[{"role": "user", "content": n}] for n in ("slow", "a", "b")]):
        seen.append((time.monotonic() - start, sorted(k for k, _ in batch)))
    arrived_fast = [k for t, batch in seen if t < 2 for k in batch]
    assert sorted(arrived_fast) == [1, 2] and seen[-1][1] == [0]


def test_closing_the_stream_early_cancels_the_requests_in_flight(serve):
    client, _ = serve({"slow": [("hang", 8)], "a": ["a"]}, timeout_s=20.0)
    stream = client.chat_stream([[{"role": "user", "content": n}] for n in ("slow", "a")])
    first = next(stream)
    start = time.monotonic()
    stream.close()
    assert [k for k, _ in first] == [1] and time.monotonic() - start < 3


# --- the detect judge shares the client ---------------------------------------------------------------------


def test_judge_takes_no_truncated_verdict(serve):
    from rephraser.detect.judge import OpenAIJudge

    client, plan = serve({})
    judge = OpenAIJudge("code", "m", client.api_base, timeout_s=2, reasks=1)
    plan.plans.update(
        {
            judge_message("p0"): [("length", "True"), "False"],  # "True" cut from "True, but...": asked again
            judge_message("p1"): [("length", "True")],  # never whole: no verdict
            judge_message("p2"): ["True"],
        }
    )
    verdicts = judge.judge_pairs([("p0", "t"), ("p1", "t"), ("p2", "t")])
    assert verdicts == [False, None, True]
    assert judge.stats["truncated"] == 3 and judge.stats["unparseable"] == 1 and judge.stats["reasks"] == 2
    s = judge.stats
    assert s["pairs"] == s["true"] + s["false"] + s["unparseable"] + s["api_errors"]


def judge_message(test: str) -> str:
    from rephraser.detect.judge import pair_message

    return pair_message(test, "t")
