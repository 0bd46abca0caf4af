"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests: canned, deliberately imperfect replies.

    server = FakeOpenAI(reply=lambda question, attempt, transient: ..., key="test-key").start()
    server.url  -> "http://127.0.0.1:PORT/v1";  server.log -> [(time, question, attempt, status)]

`reply(question, attempt, transient)` answers attempt k (counted from the conversation: a retry carries the rejected
reply and the reason) with a string (a well-formed completion, finish_reason "stop"), or with a misbehaviour:

    ("status", 429, retry_after)      an error status; Retry-After: str(retry_after) unless None ("soon", 100000)
    ("hang", seconds)                 nothing for `seconds`, then a completion ("too late")
    ("trickle", seconds, text)        the completion of `text`, its body sent a few bytes at a time over `seconds`
    ("length", text)                  the completion of `text` with finish_reason "length" (cut at max_tokens)
    ("raw", status, content_type, body)   exactly that body (malformed JSON, an HTML page, odd shapes)
    ("echo_auth", status)             an error body that quotes the request's Authorization header (the key)

Each misbehaviour is served once per (question, attempt): the retry then gets `reply` again with
`transient=False`. `respond(messages)` instead of `reply` answers any chat the same way (attempt 0). The server
checks the key and never logs it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, reply=None, key: str = "test-key", respond=None):
        """`reply(question, attempt, transient)` for rephrase-style prompts, or `respond(messages)` for any chat."""
        self.reply, self.respond, self.key = reply, respond, key
        self.log: list[tuple] = []
        self.served_transient: set = set()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self):
        # A short poll: stop() waits for it, once per test.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: and never the headers (the key)
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {server.key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                messages = body["messages"]
                if server.respond is not None:
                    question, attempt = messages[-1]["content"], 0
                    answer = server.respond(messages)
                else:
                    first = messages[0]["content"]
                    question = re.split(r"\n(?:Problem|Question|Text):\n", first)[-1].strip()
                    attempt = (len(messages) + 1) // 2
                    answer = server.reply(question, attempt, (question, attempt) not in server.served_transient)
                if isinstance(answer, tuple):
                    with server.lock:
                        server.served_transient.add((question, attempt))
                        server.log.append((time.monotonic(), question, attempt, answer[0]))
                    return self._misbehave(answer, body)
                with server.lock:
                    server.log.append((time.monotonic(), question, attempt, 200))
                return self._send(200, _completion(body, answer))

            def _misbehave(self, answer, body):
                kind = answer[0]
                if kind == "hang":
                    time.sleep(answer[1])
                    return self._send(200, _completion(body, "too late"))
                if kind == "trickle":
                    return self._trickle(json.dumps(_completion(body, answer[2])).encode(), answer[1])
                if kind == "length":
                    return self._send(200, _completion(body, answer[1], finish_reason="length"))
                if kind == "raw":
                    data = answer[3].encode() if isinstance(answer[3], str) else answer[3]
                    return self._send_bytes(answer[1], data, {"Content-Type": answer[2]})
                if kind == "echo_auth":
                    quoted = f"invalid request; headers were Authorization: {self.headers['Authorization']}"
                    return self._send(answer[1], {"error": {"message": quoted}})
                status, retry_after = answer[1], answer[2]
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return self._send(status, {"error": {"message": f"transient {status}"}}, headers)

            def _send(self, status, payload, headers=None):
                self._send_bytes(
                    status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
                )

            def _send_bytes(self, status, data, headers):
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def _trickle(self, data, seconds):
                """Headers at once, then the body a few bytes at a time: never idle long, never done in time."""
                pieces = [data[k : k + 4] for k in range(0, len(data), 4)]
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.flush()
                    for piece in pieces:
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(seconds / len(pieces))
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _completion(body: dict, text: str, finish_reason: str = "stop") -> dict:
    sent = sum(len(m["content"].split()) for m in body["messages"])
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
        "usage": {
            "prompt_tokens": sent,
            "completion_tokens": len(text.split()),
            "total_tokens": sent + len(text.split()),
        },
    }


def within(seconds: float, fn):
    """fn() in a thread: its result, or a failed test (not a hung one) when it takes longer than `seconds` (a
    client that sleeps for what a server asks, or waits on a trickle, would otherwise hang the suite)."""
    result: dict = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def spaced(text: str, every: int = 4, word: str = "indeed") -> str:
    """An acceptable 'rephrase' for tests: the same words (numbers kept), a filler word after every `every`
    words, so no run of `every + 1` words is shared with the original."""
    tokens = text.split()
    return " ".join(t + (f" {word}" if (k + 1) % every == 0 else "") for k, t in enumerate(tokens))


if __name__ == "__main__":  # a separate server process for benchmarks: `python tests/fake_openai.py LATENCY KEY`
    import sys

    latency, key = float(sys.argv[1]), sys.argv[2]

    def _reply(question, attempt, transient):
        time.sleep(latency)
        return spaced(question)

    server = FakeOpenAI(_reply, key=key)
    print(server.url, flush=True)
    server.httpd.serve_forever()
