"""The dashboard over a real local socket: HEAD, and the Host check that keeps a
DNS-rebinding page from reading /status.json (issue 13, item 5)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from quotaflow import _dashboard


def request(
    port: int, method: str, path: str, host: str | None, address: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """Send one request byte for byte (``Host`` as given, or none); status, headers, body."""
    lines = [f"{method} {path} HTTP/1.1", "Connection: close"]
    if host is not None:
        lines.append(f"Host: {host}")
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def serving(state: Path, host: str) -> Iterator[int]:
    server, thread = _dashboard.serve(state, host, 0, profiles=[], refresh=0)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    """A dashboard on 127.0.0.1 over an empty state."""
    yield from serving(tmp_path, "127.0.0.1")


@pytest.mark.parametrize("path", ["/", "/status.json", "/nothing-here"])
def test_head_is_get_without_the_body(port: int, path: str) -> None:
    """HEAD answers what GET answers, the same headers, and sends no body at all."""
    get_status, get_headers, get_body = request(port, "GET", path, f"127.0.0.1:{port}")
    head_status, head_headers, head_body = request(port, "HEAD", path, f"127.0.0.1:{port}")
    assert head_status == get_status == (404 if "nothing" in path else 200)
    assert head_body == b""
    assert get_body
    assert int(head_headers["Content-Length"]) == len(get_body)
    for name in ("Content-Type", "Cache-Control", "Content-Security-Policy"):
        assert head_headers[name] == get_headers[name]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LocalHost:{port}", "[::1]", "[::1]:{port}"],
)
def test_loopback_names_are_answered(port: int, host: str) -> None:
    """The loopback names, with this server's port or none, in any case."""
    status, headers, body = request(port, "GET", "/status.json", host.format(port=port))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert isinstance(json.loads(body), list)
    assert b'"circuit"' in body  # the status itself, which refused requests never see


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:{port}",
        "127.0.0.1.attacker.example",
        "localhost.attacker.example:{port}",
        "localhost:1",  # another port: not this server
        "",
        None,  # no Host at all
        "[::1",
        "localhost:http",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/status.json", "/metrics"])
def test_other_names_are_refused(port: int, host: str | None, method: str, path: str) -> None:
    """Any other Host (a rebinding page's own name) gets 421 and none of the state."""
    status, _, body = request(port, method, path, host and host.format(port=port))
    assert status == 421
    assert b"circuit" not in body  # none of the status
    assert b"quotaflow_" not in body  # nor its metrics
    if method == "GET":
        assert b"answers only to localhost" in body


def test_the_bound_address_is_answered(tmp_path: Path) -> None:
    """Bound to another loopback address, the server answers to that address too (and
    still to localhost), not to a name it was not given."""
    for port in serving(tmp_path, "127.0.0.2"):
        assert request(port, "GET", "/", f"127.0.0.2:{port}", "127.0.0.2")[0] == 200
        assert request(port, "GET", "/", "localhost", "127.0.0.2")[0] == 200
        assert request(port, "GET", "/", "127.0.0.3", "127.0.0.2")[0] == 421


def test_every_address_is_no_name(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 the server still answers to localhost, but not to ``0.0.0.0``,
    which some browsers let a web page reach (it is not a name the server was given)."""
    for port in serving(tmp_path, "0.0.0.0"):
        assert request(port, "GET", "/", f"localhost:{port}")[0] == 200
        assert request(port, "GET", "/", f"0.0.0.0:{port}")[0] == 421
