"""Host patterns of profiles (``"api.example.com"``, ``"*.example.com"``,
``"localhost:8080"``, ``"[::1]:8080"``) and how a URL matches one. Strictly private."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import httpx

from ._fields import _Malformed, _tuple

__all__ = ["host_matches", "lower", "split_host", "url_port", "valid_hosts"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(pattern: str) -> tuple[str, int | None]:
    """``"host:port"`` (``"[::1]:8080"`` for IPv6) as (host, port); a bare host has
    port None. Raises ValueError for a port that is not 1 to 65535."""
    host, port = pattern, ""
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{pattern!r}: expected '[address]:port'")
        port = rest[1:]
    elif pattern.count(":") == 1:  # more colons: a bare IPv6 address
        host, port = pattern.split(":")
    if not port and pattern.endswith(":"):
        raise ValueError(f"{pattern!r}: the port is missing after ':'")
    if not port:
        return host, None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{pattern!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def url_port(url: httpx.URL) -> int | None:
    """The port ``url`` connects to, its scheme's default included."""
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def valid_hosts(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("must name at least one host")
    for host in value:
        if not isinstance(host, str) or not host or "/" in host or host != host.strip():
            raise ValueError(
                f"{host!r} is not a host name (e.g. 'api.example.com', '*.example.com' "
                "or 'localhost:8080')"
            )
        if not split_host(host)[0]:
            raise ValueError(f"{host!r}: the host name is missing")


def host_matches(pattern: str, host: str, port: int | None) -> bool:
    name, wanted = split_host(pattern)
    if wanted is not None and wanted != port:
        return False
    return host == name or (name.startswith("*.") and host.endswith(name[1:]))


def lower(names: Iterable[str]) -> tuple[str, ...]:
    found = _tuple(names)
    if isinstance(found, _Malformed):
        return found
    return tuple(name.lower() if isinstance(name, str) else name for name in found)
