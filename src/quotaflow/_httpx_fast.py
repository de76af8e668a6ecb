"""Two reads of httpx objects on every request, cheaply: the one use of httpx's model
internals besides ``_network.py``'s. Strictly private.

The router looks up what each URL means (``_transports/_route.py``) and scans each
request's header names (secret headers, cache directives) on every request, the hot
tier's hits included, where the public API costs as much as the rest of the lookup: a
key built from ``httpx.URL``'s properties re-derives each one (decoding, encoding), and
``Headers.raw`` builds a new list of pairs whose names must then be lowered one by one.
httpx keeps both ready: in httpx 0.28.1 (its last release), ``URL._uri_reference`` is a
``ParseResult`` named tuple of scheme, userinfo, host, port, path, query and fragment
(hashable, as a dict key), and ``Headers._list`` holds ``(raw name, lower-case name,
value)`` triples.

A header known to be absent is added the same way, as httpx adds one.

Each is checked once, at import, on a value whose layout is known; should httpx keep
them otherwise, the public API is used instead (slower, the same answers).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import httpx

__all__ = ["add_header", "header_names", "url_key"]

# Checked against httpx 0.28.1.
_PROBE_URL = "https://user:pw@Example.com:8443/a%20b?q=1&r=#frag"
_EXPECTED_URL = ("https", "user:pw", "example.com", 8443, "/a%20b", "q=1&r=", "frag")
_PROBE_HEADERS = [(b"X-One", b"1"), (b"x-two", b"2")]
_EXPECTED_HEADERS = [(b"X-One", b"x-one", b"1"), (b"x-two", b"x-two", b"2")]


def public_key(url: httpx.URL) -> Hashable:
    """Everything that tells two URLs apart, from public properties."""
    return (url.scheme, url.userinfo, url.host, url.port, url.raw_path, url.fragment)


def _components(url: httpx.URL) -> Hashable:
    return url._uri_reference  # httpx 0.28.1: see the module docstring


def public_names(headers: httpx.Headers) -> set[bytes]:
    """The header names, lower case, from public properties."""
    return {name.lower() for name, _ in headers.raw}


def _lowered(headers: httpx.Headers) -> set[bytes]:
    return {lowered for _, lowered, _ in headers._list}  # httpx 0.28.1: see above


def public_add(headers: httpx.Headers, name: bytes, value: str) -> None:
    """Add a header known to be absent, through the public API."""
    headers[name.decode("ascii")] = value


def _add(headers: httpx.Headers, name: bytes, value: str) -> None:
    headers._list.append((name, name, value.encode("ascii")))  # httpx 0.28.1: see above


def _choose_url_key() -> Callable[[httpx.URL], Hashable]:
    try:
        found = _components(httpx.URL(_PROBE_URL))
        ok = isinstance(found, tuple) and tuple(found) == _EXPECTED_URL
    except Exception:
        ok = False
    return _components if ok else public_key


def _choose_header_names() -> Callable[[httpx.Headers], set[bytes]]:
    try:
        headers = httpx.Headers(_PROBE_HEADERS)
        ok = headers._list == _EXPECTED_HEADERS and _lowered(headers) == {b"x-one", b"x-two"}
    except Exception:
        ok = False
    return _lowered if ok else public_names


def _choose_add() -> Callable[[httpx.Headers, bytes, str], None]:
    try:
        headers = httpx.Headers(_PROBE_HEADERS)
        _add(headers, b"x-three", "3")
        ok = headers._list[-1] == (b"x-three", b"x-three", b"3") and headers["X-Three"] == "3"
    except Exception:
        ok = False
    return _add if ok else public_add


url_key: Callable[[httpx.URL], Hashable] = _choose_url_key()
"""A URL as a dictionary key: equal for equal URLs (fragment included)."""

header_names: Callable[[httpx.Headers], set[bytes]] = _choose_header_names()
"""The lower-case names of the headers."""

add_header: Callable[[httpx.Headers, bytes, str], None] = _choose_add()
"""Add a header, named in lower case ASCII, that the headers are known not to hold."""
