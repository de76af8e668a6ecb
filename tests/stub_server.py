"""Helpers for tests that need real sockets: a counting HTTP stub and a Redis prefix."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from uuid import uuid4

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


class LocalServer:
    """A threading HTTP server on 127.0.0.1 (a free port), serving while in ``with``."""

    base: str

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class StubServer(LocalServer):
    """An HTTP server on 127.0.0.1 answering JSON and counting requests per path.

    A request header ``x-slow: <seconds>`` delays the answer, so that concurrent
    misses overlap; ``x-status: <code>`` sets the status (and ``x-retry-after`` the
    Retry-After header), so that upstream can fail or ask to hold off.

    With ``quota``, every answer reports usage as a quota API does (The Odds API's
    convention): ``x-requests-used`` (requests received so far, this one included),
    ``x-requests-remaining`` (``quota`` less that) and ``x-requests-last: 1``.
    """

    def __init__(self, quota: int | None = None) -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub.hits[self.path] += 1
                    used = sum(stub.hits.values())
                time.sleep(float(self.headers.get("x-slow") or 0))
                body = json.dumps({"path": self.path}).encode()
                self.send_response(int(self.headers.get("x-status") or 200))
                if retry_after := self.headers.get("x-retry-after"):
                    self.send_header("retry-after", retry_after)
                if quota is not None:
                    self.send_header("x-requests-used", str(used))
                    self.send_header("x-requests-remaining", str(max(0, quota - used)))
                    self.send_header("x-requests-last", "1")
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.hits.values())


def redis_unavailable() -> None:
    """Skip, or fail on CI, where Redis must be there."""
    message = "Redis not reachable at 127.0.0.1:6379"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own for one test; its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        client.close()
        redis_unavailable()
    prefix = f"qf-test-{uuid4().hex}"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


class StreamServer(LocalServer):
    """Streams a body in two parts: the first at once, the rest only once the test has
    seen the first (``release`` set; 10 s at most), so a client that buffers whole
    bodies gets its first byte only after the test gave up waiting.

    ``GET /body?size=N`` (``cache-control`` from ``?cc=``), ``GET /events`` (a
    ``text/event-stream``). Counts requests per path in ``hits``.
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        self.first_sent = threading.Event()
        # Set once the rest of the body is written: a client that sees the first chunk
        # before this is set streamed it (whatever the timing).
        self.rest_sent = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                stub.hits[path] += 1
                params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
                size = int(params.get("size", "2000"))
                body = (b"0123456789" * (size // 10 + 1))[:size]
                self.send_response(200)
                if path == "/events":
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "max-age=60")
                    head, tail = b"data: one\n\n", b"data: two\n\n"
                else:
                    self.send_header("content-type", "application/octet-stream")
                    self.send_header("cache-control", params.get("cc", "max-age=60"))
                    head, tail = body[:1000], body[1000:]
                self.send_header("content-length", str(len(head) + len(tail)))
                self.end_headers()
                self.wfile.write(head)
                self.wfile.flush()
                stub.first_sent.set()
                stub.release.wait(10)
                self.wfile.write(tail)
                self.wfile.flush()
                stub.rest_sent.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)


class SdkStub(LocalServer):
    """Just enough of the OpenAI and Anthropic APIs for their SDKs, counting requests.

    ``GET /v1/models/<id>`` answers cacheably (``max-age=60``) with a model whose
    ``owned_by`` / ``display_name`` is the API key the request carried (``Authorization:
    Bearer <key>`` or ``x-api-key``); the model ``unavailable`` answers 503 with a zero
    ``Retry-After`` (and ``retry-after-ms: 1`` for the SDKs), so that retries do not
    sleep. ``POST /v1/chat/completions`` and ``POST /v1/messages`` answer a completion
    numbered by the calls so far (cacheable too, to show POSTs are not cached); asked
    to ``"stream": true``, they answer server-sent events, the first at once and the
    rest only once ``release`` is set (10 s at most; ``rest_sent`` then).
    ``hits`` counts ``"METHOD /path"``; ``seen`` keeps each request's method, path,
    headers and body.
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        self.rest_sent = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with stub._lock:
                    stub.hits[f"{self.command} {self.path}"] += 1
                    number = stub.hits[f"{self.command} {self.path}"]
                    stub.seen.append(
                        (
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                if self.command == "POST" and json.loads(body or b"{}").get("stream"):
                    self._events()
                    return
                auth = self.headers.get("authorization") or ""
                key = auth.removeprefix("Bearer ") or self.headers.get("x-api-key") or ""
                status = 200
                answer: dict[str, Any] = {}
                headers = {"cache-control": "max-age=60"}
                if self.command == "GET" and self.path == "/v1/models/unavailable":
                    status = 503
                    answer = {"error": {"type": "overloaded", "message": "try again"}}
                    headers = {"retry-after": "0", "retry-after-ms": "1"}
                elif self.command == "GET" and self.path.startswith("/v1/models/"):
                    answer = {
                        "id": self.path.rsplit("/", 1)[1],
                        # OpenAI's Model
                        "object": "model",
                        "created": 0,
                        "owned_by": key,
                        # Anthropic's ModelInfo
                        "type": "model",
                        "display_name": key,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                elif self.command == "POST" and self.path == "/v1/chat/completions":
                    answer = {
                        "id": f"chatcmpl-{number}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": f"answer {number}"},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                elif self.command == "POST" and self.path == "/v1/messages":
                    answer = {
                        "id": f"msg_{number}",
                        "type": "message",
                        "role": "assistant",
                        "model": "m",
                        "content": [{"type": "text", "text": f"answer {number}"}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 1, "output_tokens": 1},
                    }
                else:
                    status, answer, headers = 404, {"error": {"message": self.path}}, {}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def _events(self) -> None:
                if self.path == "/v1/chat/completions":
                    events = [
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": "m",
                            "choices": [
                                {"index": 0, "delta": {"content": text}, "finish_reason": None}
                            ],
                        }
                        for text in ("one", "two")
                    ]
                    frames = [f"data: {json.dumps(event)}\n\n" for event in events]
                    frames.append("data: [DONE]\n\n")
                else:
                    start: dict[str, Any] = {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": "m",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 1, "output_tokens": 0},
                    }
                    events = [
                        {"type": "message_start", "message": start},
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": "two"},
                        },
                        {"type": "message_stop"},
                    ]
                    frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for n, frame in enumerate(frames):
                    if n == 1:
                        stub.release.wait(10)
                    data = frame.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                stub.rest_sent.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)
