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
from typing import Self
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
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub.hits[self.path] += 1
                time.sleep(float(self.headers.get("x-slow") or 0))
                body = json.dumps({"path": self.path}).encode()
                self.send_response(int(self.headers.get("x-status") or 200))
                if retry_after := self.headers.get("x-retry-after"):
                    self.send_header("retry-after", retry_after)
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

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)
