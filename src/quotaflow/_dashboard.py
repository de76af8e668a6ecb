"""``quotaflow dashboard``: the status view as one HTML page on a local port. Strictly
private.

Standard library only: a ThreadingHTTPServer answers ``/`` with a self-contained page
(``_dashboard_page``: inline CSS, charts drawn as inline SVG by ``_dashboard_charts``, a
few lines of script that fetch the page again every few seconds and swap the numbers
in), ``/status.json`` with the same data as ``quotaflow status --json``, and
``/metrics`` in Prometheus' text format (with the ``metrics`` extra; see
``_metrics``). Every request reads the state afresh.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._dashboard_page import REFRESH_SECONDS, render_page
from ._profiles import ApiProfile
from ._status import ProfileStatus

__all__ = ["render_page", "serve"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    snapshot: Callable[[], tuple[float, list[ProfileStatus]]]
    refresh: float
    names: frozenset[str]  # what Host may say (see _Handler._trusted_host)


class _Server6(_Server):
    address_family = socket.AF_INET6


CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'"
)


def _host(header: str) -> tuple[str, int | None] | None:
    """The name (lower case, IPv6 without brackets) and port of a ``Host`` header; None
    when it cannot be read."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal: [::1] or [::1]:8765
        name, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = header.partition(":")
        port = port_text if colon else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    return name, None if port is None else int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "quotaflow-dashboard"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        """What GET would answer, headers only (RFC 9110 §9.3.2)."""
        self._answer(body=False)

    def _trusted_host(self) -> bool:
        """DNS rebinding defence: a page on another site that resolves its own name to
        127.0.0.1 reaches this port, but its requests still carry that name in ``Host``.
        Answer only to the loopback names and the address the server is bound to, with
        this server's port or none."""
        found = _host(self.headers.get("Host") or "")
        if found is None:
            return False
        name, port = found
        return name in self.server.names and port in (None, self.server.server_address[1])

    def _answer(self, *, body: bool) -> None:
        if not self._trusted_host():
            # 421 Misdirected Request (RFC 9110 §15.5.20): not a name this server answers to.
            self._send(
                HTTPStatus.MISDIRECTED_REQUEST,
                "text/plain",
                b"this dashboard answers only to localhost, 127.0.0.1, [::1] "
                b"or the address it listens on\n",
                body=body,
            )
            return
        path = self.path.split("?", 1)[0]
        if path not in ("/", "/index.html", "/status.json", "/metrics"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", body=body)
            return
        try:
            now, statuses = self.server.snapshot()
        except Exception as exc:  # a broken state must not kill the server
            message = f"cannot read the state: {type(exc).__name__}: {exc}\n"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", message.encode(), body=body)
            return
        if path == "/metrics":
            self._metrics(statuses, body=body)
        elif path == "/status.json":
            text = json.dumps([s.as_dict() for s in statuses], indent=2)
            self._send(HTTPStatus.OK, "application/json", text.encode(), body=body)
        else:
            page = render_page(statuses, now, self.server.refresh)
            self._send(HTTPStatus.OK, "text/html", page.encode(), body=body)

    def _metrics(self, statuses: list[ProfileStatus], *, body: bool) -> None:
        """Prometheus' text format, when prometheus-client is installed."""
        from . import _metrics

        try:
            text = _metrics.prometheus_text(statuses)
        except ImportError as exc:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", f"{exc}\n".encode(), body=body)
            return
        self._send(HTTPStatus.OK, _metrics.PROMETHEUS_CONTENT_TYPE, text, body=body)

    def _send(self, status: HTTPStatus, kind: str, content: bytes, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind if "charset" in kind else f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page polls every few seconds."""


def serve(
    state_dir: Path | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    profiles: Iterable[ApiProfile] | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "quotaflow",
    refresh: float = REFRESH_SECONDS,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the dashboard in a daemon thread; port 0 picks a free one.

    Stop it with ``server.shutdown(); server.server_close()``. The state is read once
    here, so a bad configuration fails now rather than on the first page.
    """
    from ._cli_status import collect

    chosen = list(profiles) if profiles is not None else None

    def snapshot() -> tuple[float, list[ProfileStatus]]:
        now = time.time()
        return now, collect(state_dir, redis_url, redis_prefix, chosen)

    snapshot()
    server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    server.snapshot = snapshot
    server.refresh = refresh
    bound = server.server_address[0]
    server.names = frozenset(
        name.strip("[]").lower()
        for name in ("localhost", "127.0.0.1", "::1", host, str(bound))
        if name not in ("", "0.0.0.0", "::")  # "every address" is no name to answer to
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="quotaflow-dashboard"
    )
    thread.daemon = True
    thread.start()
    return server, thread


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = host.decode() if isinstance(host, bytes) else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(args: Any) -> int:
    """``quotaflow dashboard``: serve until Ctrl-C."""
    server, thread = serve(
        args.state_dir,
        args.host,
        args.port,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        refresh=args.refresh,
    )
    print(f"quotaflow dashboard on {url_of(server)} (Ctrl-C stops it)", flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return 0
