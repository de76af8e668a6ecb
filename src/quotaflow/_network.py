"""The innermost network transport, built when no ``transport=`` is given, with the
proxies :class:`httpx.Client` would use for the same arguments. Strictly private."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

import httpx

from .exceptions import ConfigError

__all__ = ["AsyncProxyRouter", "ProxyRouter", "async_network_transport", "network_transport"]

T = TypeVar("T")


class _Pattern(Protocol):
    """What quotaflow needs of httpx's ``URLPattern``: matching and ordering."""

    def matches(self, other: httpx.URL) -> bool: ...

    def __lt__(self, other: Any, /) -> bool: ...


_Mounts = Sequence[tuple[_Pattern, T | None]]


def _httpx_private() -> (
    tuple[Callable[[], dict[str, str | None]], Callable[[str], _Pattern]] | None
):
    """httpx's own reading of the proxy variables and its URL patterns; None if gone.

    The one place quotaflow touches httpx internals. httpx.Client applies ``proxy=`` and
    the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY, any case) only when it
    builds its own transport (``Client.__init__``, ``_get_proxy_map``,
    ``_transport_for_url``); quotaflow passes ``transport=``, so :func:`_routes` repeats
    those few lines with these two helpers, to route exactly as httpx does. Both are
    private in httpx 0.28.1, its last release (the maintained fork is httpx2). Without
    them, an explicit ``proxy=`` still works (it is public), and proxy variables are
    refused loudly rather than bypassed silently.
    """
    try:
        from httpx._utils import URLPattern, get_environment_proxies
    except ImportError:
        return None
    return get_environment_proxies, URLPattern


def _refuse_environment() -> None:
    """Without httpx's helpers, proxy variables must not be silently bypassed."""
    found = urllib.request.getproxies()
    if "*" in (host.strip() for host in found.get("no", "").split(",")):
        return  # NO_PROXY=*: httpx would read no proxy either
    names = [f"{scheme.upper()}_PROXY" for scheme in ("http", "https", "all") if found.get(scheme)]
    if names:
        raise ConfigError(
            f"trust_env: {', '.join(names)} set, but this httpx lacks the helpers quotaflow "
            "uses to apply them as httpx.Client does; pass proxy=, trust_env=False or "
            "transport="
        )


def _routes(make: Callable[..., T], network: dict[str, Any]) -> tuple[T, _Mounts[T]]:
    """The default transport, and the proxy mounts httpx.Client builds from these arguments.

    A mount of None means "the default transport" (a NO_PROXY exclusion). Mounts come
    most specific first, the order httpx tries them in.
    """
    options = {name: value for name, value in network.items() if name != "proxy"}
    proxy = network.get("proxy")
    if proxy is not None:
        # httpx mounts {"all://": proxy}: every URL goes through it and the environment,
        # NO_PROXY included, is not read. One proxied transport is the same thing.
        return make(proxy=proxy, **options), ()
    if not network.get("trust_env", True):
        return make(**options), ()
    private = _httpx_private()
    if private is None:
        _refuse_environment()
        return make(**options), ()
    environment, pattern = private
    proxies = environment()
    if not any(proxies.values()):  # nothing set, or NO_PROXY alone: all go direct
        return make(**options), ()
    mounts = [
        (pattern(key), None if url is None else make(proxy=httpx.Proxy(url=url), **options))
        for key, url in proxies.items()
    ]
    mounts.sort(key=lambda mount: mount[0])
    return make(**options), mounts


def _pick(default: T, mounts: _Mounts[T], url: httpx.URL) -> T:
    """httpx's ``Client._transport_for_url``: the first matching mount, else the default."""
    for pattern, transport in mounts:
        if pattern.matches(url):
            return default if transport is None else transport
    return default


class ProxyRouter(httpx.BaseTransport):
    """Sends each request through the transport httpx.Client would pick for its URL.

    Holds one :class:`httpx.HTTPTransport` per proxy pattern, built once; closing the
    router closes them all. Strictly private.
    """

    def __init__(self, default: httpx.BaseTransport, mounts: _Mounts[httpx.BaseTransport]):
        self.default = default
        self.mounts = tuple(mounts)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _pick(self.default, self.mounts, request.url).handle_request(request)

    def __enter__(self) -> ProxyRouter:
        # As httpx.Client enters its transport and then each mount.
        self.default.__enter__()
        for _, transport in self.mounts:
            if transport is not None:
                transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.default.__exit__(exc_type, exc_value, traceback)
        for _, transport in self.mounts:
            if transport is not None:
                transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        self.default.close()
        for _, transport in self.mounts:
            if transport is not None:
                transport.close()


class AsyncProxyRouter(httpx.AsyncBaseTransport):
    """Async twin of :class:`ProxyRouter`."""

    def __init__(
        self, default: httpx.AsyncBaseTransport, mounts: _Mounts[httpx.AsyncBaseTransport]
    ):
        self.default = default
        self.mounts = tuple(mounts)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await _pick(self.default, self.mounts, request.url).handle_async_request(request)

    async def __aenter__(self) -> AsyncProxyRouter:
        await self.default.__aenter__()
        for _, transport in self.mounts:
            if transport is not None:
                await transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.default.__aexit__(exc_type, exc_value, traceback)
        for _, transport in self.mounts:
            if transport is not None:
                await transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self.default.aclose()
        for _, transport in self.mounts:
            if transport is not None:
                await transport.aclose()


def _pattern() -> Callable[[str], _Pattern]:
    private = _httpx_private()
    if private is None:
        raise ConfigError("mounts: this httpx lacks the URL patterns quotaflow routes them with")
    return private[1]


def _mounted(base: type, mounts: Any, proxied: _Mounts[T]) -> list[tuple[_Pattern, T | None]]:
    """The proxy mounts, then the caller's ``mounts=`` over them, most specific first,
    as ``httpx.Client`` orders them."""
    if mounts is None:
        return list(proxied)
    if not isinstance(mounts, dict):
        raise ConfigError(f"mounts: expected a dict of URL pattern to transport, not {mounts!r}")
    pattern = _pattern()
    found: dict[Any, T | None] = dict(proxied)
    for key, transport in mounts.items():
        if not isinstance(key, str):
            raise ConfigError(f"mounts: {key!r} is not a URL pattern")
        if transport is not None and not isinstance(transport, base):
            kind = f"httpx.{base.__name__}"
            raise ConfigError(f"mounts[{key!r}]: expected an {kind} or None, not {transport!r}")
        found[pattern(key)] = cast("T | None", transport)
    return sorted(found.items(), key=lambda mount: mount[0])


def network_transport(
    transport: httpx.BaseTransport | None = None, mounts: Any = None, **network: Any
) -> httpx.BaseTransport:
    """The innermost transport: ``transport``, else an :class:`httpx.HTTPTransport`; a
    router over several when proxies or ``mounts`` apply, chosen per URL as
    :class:`httpx.Client` would."""
    proxied: _Mounts[httpx.BaseTransport] = ()
    if transport is not None:
        default = transport
    else:
        default, proxied = _routes(httpx.HTTPTransport, network)
    routes = _mounted(httpx.BaseTransport, mounts, proxied)
    return ProxyRouter(default, routes) if routes else default


def async_network_transport(
    transport: httpx.AsyncBaseTransport | None = None, mounts: Any = None, **network: Any
) -> httpx.AsyncBaseTransport:
    """Async twin of :func:`network_transport`."""
    proxied: _Mounts[httpx.AsyncBaseTransport] = ()
    if transport is not None:
        default = transport
    else:
        default, proxied = _routes(httpx.AsyncHTTPTransport, network)
    routes = _mounted(httpx.AsyncBaseTransport, mounts, proxied)
    return AsyncProxyRouter(default, routes) if routes else default
