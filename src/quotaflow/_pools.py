"""Connection pools shared by clients with the same network settings. Strictly private.

Sync clients that quotaflow builds its own network transport for (no ``transport=``, no
``mounts=``) share one per distinct setting: the TLS context (see ``_tls``), ``cert``,
``http1``, ``http2``, ``limits``, ``proxy``, ``trust_env`` and, with ``trust_env``, the
proxy variables. Each client holds a :class:`SharedTransport`; the pool is closed when
the last of them closes, so one client closing never closes another's connections.

Async transports are not shared: an async pool's connections belong to the event loop
that opened them, and clients of one process may run on different loops.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["SharedTransport", "shared_network"]

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
_LOCK = threading.Lock()
# key -> [the network transport, how many clients hold it]
_POOLS: dict[tuple[Any, ...], list[Any]] = {}


def _key(network: dict[str, Any]) -> tuple[Any, ...] | None:
    if network.get("mounts") is not None or network.get("cert") is not None:
        return None
    trust_env = bool(network.get("trust_env", True))
    env: tuple[str | None, ...] = ()
    if trust_env:
        names = (*_PROXY_VARIABLES, *(name.lower() for name in _PROXY_VARIABLES))
        env = tuple(os.environ.get(name) for name in names)
    verify = network.get("verify", True)
    return (
        verify if isinstance(verify, bool) else id(verify),
        network.get("http1", True),
        network.get("http2", False),
        repr(network.get("limits")),
        repr(network.get("proxy")),
        trust_env,
        env,
    )


class SharedTransport(httpx.BaseTransport):
    """One client's handle on a shared network transport; closing it lets go once."""

    def __init__(self, key: tuple[Any, ...], next_transport: httpx.BaseTransport) -> None:
        self._key = key
        self.next_transport = next_transport
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.next_transport.handle_request(request)

    def close(self) -> None:
        with _LOCK:
            if self._closed:
                return
            self._closed = True
            entry = _POOLS[self._key]
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _POOLS[self._key]
        if last:
            self.next_transport.close()


def shared_network(
    build: Callable[..., httpx.BaseTransport], network: dict[str, Any]
) -> httpx.BaseTransport:
    """The process's network transport for these settings (built by ``build`` the first
    time), behind this client's own handle."""
    key = _key(network)
    if key is None:
        return build(None, **network)
    with _LOCK:
        entry = _POOLS.get(key)
        if entry is None:
            entry = _POOLS[key] = [build(None, **network), 0]
        entry[1] += 1
        return SharedTransport(key, entry[0])
