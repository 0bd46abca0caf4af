"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests: canned, deliberately imperfect replies.

    server = FakeOpenAI(reply=lambda question, attempt: ..., key="test-key").start()
    server.url  -> "http://127.0.0.1:PORT/v1";  server.log -> [(time, question, attempt, status)]

`reply(question, attempt, transient)` answers attempt k (counted from the conversation: a retry carries the rejected
reply and the reason) with a string, or with one of the transient failures: ("status", 429, retry_after),
("status", 500, None), ("hang", seconds). Each transient failure is served once per (question, attempt); the
retry then gets `reply` again with `transient=False`. The server checks the key and never logs it.
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
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
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
                    if answer[0] == "hang":
                        time.sleep(answer[1])
                        return self._send(200, _completion(body, "too late"))
                    headers = {"Retry-After": str(answer[2])} if answer[2] is not None else {}
                    return self._send(answer[1], {"error": {"message": f"transient {answer[1]}"}}, headers)
                with server.lock:
                    server.log.append((time.monotonic(), question, attempt, 200))
                return self._send(200, _completion(body, answer))

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        return Handler


def _completion(body: dict, text: str) -> dict:
    sent = sum(len(m["content"].split()) for m in body["messages"])
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {
            "prompt_tokens": sent,
            "completion_tokens": len(text.split()),
            "total_tokens": sent + len(text.split()),
        },
    }


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
