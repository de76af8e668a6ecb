"""A URL as a dictionary key, cheaply: the one use of httpx's URL internals besides
``_network.py``'s. Strictly private.

The router remembers what each URL means (``_transports/_route.py``), so it looks a URL
up on every request. A key built from ``httpx.URL``'s public properties costs about as
much as the rest of that lookup (each property re-derives its value, decoding and
encoding). httpx keeps a URL's parsed components as a tuple: in httpx 0.28.1 (its last
release), ``URL._uri_reference``, a ``ParseResult`` named tuple of scheme, userinfo,
host, port, path, query and fragment, which hashes about ten times faster. Two URLs
with equal components are the same URL, so nothing but the cost depends on the choice.

It is checked once, at import, on a URL whose components are known; should httpx keep
them otherwise, :func:`url_key` falls back to the public properties (slower, the same
answers).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import httpx

__all__ = ["url_key"]

# Checked against httpx 0.28.1.
_PROBE = "https://user:pw@Example.com:8443/a%20b?q=1&r=#frag"
_EXPECTED = ("https", "user:pw", "example.com", 8443, "/a%20b", "q=1&r=", "frag")


def public_key(url: httpx.URL) -> Hashable:
    """Everything that tells two URLs apart, from public properties."""
    return (url.scheme, url.userinfo, url.host, url.port, url.raw_path, url.fragment)


def _components(url: httpx.URL) -> Hashable:
    return url._uri_reference  # httpx 0.28.1: see the module docstring


def _choose() -> Callable[[httpx.URL], Hashable]:
    try:
        found = _components(httpx.URL(_PROBE))
        ok = isinstance(found, tuple) and tuple(found) == _EXPECTED and hash(found) is not None
    except Exception:
        ok = False
    return _components if ok else public_key


url_key: Callable[[httpx.URL], Hashable] = _choose()
