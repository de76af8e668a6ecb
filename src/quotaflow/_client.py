from __future__ import annotations

import difflib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import attrs
import httpx

from ._clock import Clock
from ._cold import COLD_BYTES
from ._network import async_network_transport, network_transport
from ._plan import _PARTS
from ._pools import SharedTransport, shared_network
from ._profiles import ApiProfile
from ._retention import AsyncRetainingStorage, RetainingStorage
from ._runtime import Runtime
from ._settings import load_settings
from ._state._async_waitroom import AsyncWaitRoom
from ._state._short import ShortWindow
from ._state._sync_waitroom import WaitRoom
from ._tls import shared_tls
from ._transports._async_cache import AsyncCachingTransport
from ._transports._async_fallback import AsyncFallbackTransport
from ._transports._async_ratelimit import AsyncRateLimitTransport
from ._transports._core import MAX_BODY
from ._transports._sync_cache import CachingTransport
from ._transports._sync_fallback import FallbackTransport
from ._transports._sync_ratelimit import RateLimitTransport
from .events import Subscriber
from .exceptions import ConfigError

__all__ = ["make_async_client", "make_client"]

logger = logging.getLogger("quotaflow")

# Client arguments that only shape the network transport: when quotaflow builds that
# transport itself, they go to it (httpx ignores them once a transport is given), and
# proxy= and the proxy environment variables choose proxies as httpx.Client would
# (_network.py).
_TRANSPORT_ARGS = ("verify", "cert", "http1", "http2", "limits", "proxy", "trust_env", "mounts")


@functools.cache
def _parameters(function: Any) -> frozenset[str]:
    """The parameters ``function`` takes; for a class, those of the first httpx class in
    its MRO (a subclass taking ``**kwargs``, as a test harness may install as
    ``httpx.Client``, takes what httpx's own takes)."""
    if isinstance(function, type):
        function = next(c for c in function.__mro__ if c.__module__.startswith("httpx"))
    return frozenset(inspect.signature(function).parameters)


def _check_arguments(flavour: Any, httpx_kwargs: dict[str, Any]) -> None:
    """Name an argument neither quotaflow nor httpx takes here, not deep in httpx."""
    known = _parameters(flavour.client) - {"self", "transport"}
    for name in httpx_kwargs:
        if name not in known:
            ours = _parameters(make_client) - {"httpx_kwargs"}
            close = difflib.get_close_matches(name, sorted(known | ours), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            kind = flavour.client.__name__
            raise ConfigError(f"{name}: not an argument of make_client or httpx.{kind}{hint}")


def _split(httpx_kwargs: dict[str, Any]) -> dict[str, Any]:
    network = {name: httpx_kwargs.pop(name) for name in _TRANSPORT_ARGS if name in httpx_kwargs}
    if "trust_env" in network:
        # Kept on the client too, so client.trust_env reads as given. Handed a transport,
        # httpx reads no proxy variables, so this changes nothing else there.
        httpx_kwargs["trust_env"] = network["trust_env"]
    return network


def make_client(
    *,
    profiles: Iterable[ApiProfile] | None = None,
    plugins: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    transport: httpx.BaseTransport | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "quotaflow",
    redis_fail: Literal["open", "closed"] = "closed",
    hot_entries: int = 1024,
    hot_bytes: int = 32 * 2**20,
    subscribers: Iterable[Subscriber] | None = None,
    config: str | os.PathLike[str] | bool | None = None,
    cache: bool | None = None,
    rate_limit: bool | None = None,
    fallback: bool | None = None,
    retries: bool | int | None = None,
    max_body: int = MAX_BODY,
    default_ttl: float | str | None = None,
    url_rules: Mapping[str, float | str] | None = None,
    secret_params: Iterable[str] = (),
    secret_headers: Iterable[str] = (),
    clock: Clock | None = None,
    cold_bytes: int = COLD_BYTES,
    alert_command: Sequence[str] | None = None,
    **httpx_kwargs: Any,
) -> httpx.Client:
    """Build an :class:`httpx.Client` whose requests go through quotaflow's stack.

    Args:
        profiles: API profiles to add, replacing plugin profiles of the same name.
        plugins: load profiles from the ``quotaflow.plugins`` entry points.
        state_dir: where the cache and the quota state live (SQLite files);
            default ``$QUOTAFLOW_HOME``, else ``~/.cache/quotaflow``.
        transport: the innermost transport (default :class:`httpx.HTTPTransport`, built
            from ``verify``, ``cert``, ``http1``, ``http2``, ``limits``, ``proxy`` and
            ``trust_env``, with the proxies :class:`httpx.Client` would use: ``proxy=``,
            else with ``trust_env`` the ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``
            variables). ``mounts=`` routes URL patterns to other transports exactly as
            httpx does, each below the whole stack.
        redis_url: keep the shared state (cache, limiter, quota, leases) in Redis
            instead of SQLite; default ``$QUOTAFLOW_REDIS_URL``. Needs the ``redis`` extra.
        redis_prefix: prefix of every Redis key, so deployments can share one Redis.
        redis_fail: when Redis cannot be reached, ``"closed"`` raises
            :class:`StateUnavailable`; ``"open"`` carries on with local SQLite state.
        hot_entries: at most this many fresh answers kept in process memory (0: none).
        hot_bytes: at most this many body bytes kept in process memory.
        subscribers: callables receiving :mod:`quotaflow.events`, beside the plugins' own.
        config: a TOML file of settings (default: ``$QUOTAFLOW_CONFIG``, else
            ``quotaflow.toml`` or ``[tool.quotaflow]`` in ``pyproject.toml`` in the working
            directory; ``False``: no file). It may change profiles and turn layers off.
        cache: use the cache (default: the config file's, else True).
        rate_limit: wait for short-window rates and refuse past the quota reserves.
        fallback: answer with stale stored responses when upstream fails.
        retries: quotaflow's own retries of idempotent requests to profiled APIs (each
            passes the limiter and is counted): None, each profile's ``retries``;
            False or 0, none (under an SDK that retries itself); a number, that many.
            A request's ``extensions={"retries": ...}`` wins.
        max_body: bodies larger than this many bytes stream through unstored, and are
            never read whole, even by profile rules that read bodies (default 8 MiB).
        default_ttl: seconds (or ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``) an answer
            that says nothing of its freshness stays fresh, on hosts whose profile has
            no ``default_ttl`` of its own (default: the config file's, else none).
        url_rules: ``{"api.example.com/static/*": "1h", "api.example.com/live/*":
            "no-store"}``: a glob on ``host[:port]/path`` to a lifetime that overrides
            what the origin says, or ``"no-store"``; the first match wins.
        secret_params: more query parameters that carry credentials, on every host
            (beside ``apiKey``, ``key``, ``token``, ``access_token``... and each profile's):
            never stored or logged, and each value is its own cache partition.
        secret_headers: more request headers that carry credentials, likewise (beside
            ``Authorization``, ``Cookie``, ``X-API-Key``, ``X-RapidAPI-Key``...).
        clock: time and sleep, for tests and simulations.
        cold_bytes: the cold store's bound (``cold.db`` in the state directory): answers
            a profile marks immutable are kept there past any freshness, the least
            recently used leaving once the bodies kept pass this many bytes (default
            256 MiB). Made only when a profile marks answers immutable.
        alert_command: a command (argv list, run without a shell) run in the background
            each time a profile's quota falls to one of its ``alerts``, once across the
            processes sharing the state, with ``QUOTAFLOW_PROFILE``,
            ``QUOTAFLOW_REMAINING``, ``QUOTAFLOW_THRESHOLD`` and ``QUOTAFLOW_TOTAL`` set;
            its failures are logged (default: the config file's ``alert_command``).
        **httpx_kwargs: everything else goes to :class:`httpx.Client`.

    Raises:
        ConfigError: a setting is invalid; the message names it.

    .. versionadded:: 0.1
    """
    return cast(httpx.Client, _build(_SYNC, transport, httpx_kwargs, **_arguments(locals())))


def make_async_client(
    *,
    profiles: Iterable[ApiProfile] | None = None,
    plugins: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "quotaflow",
    redis_fail: Literal["open", "closed"] = "closed",
    hot_entries: int = 1024,
    hot_bytes: int = 32 * 2**20,
    subscribers: Iterable[Subscriber] | None = None,
    config: str | os.PathLike[str] | bool | None = None,
    cache: bool | None = None,
    rate_limit: bool | None = None,
    fallback: bool | None = None,
    retries: bool | int | None = None,
    max_body: int = MAX_BODY,
    default_ttl: float | str | None = None,
    url_rules: Mapping[str, float | str] | None = None,
    secret_params: Iterable[str] = (),
    secret_headers: Iterable[str] = (),
    clock: Clock | None = None,
    cold_bytes: int = COLD_BYTES,
    alert_command: Sequence[str] | None = None,
    **httpx_kwargs: Any,
) -> httpx.AsyncClient:
    """Build an :class:`httpx.AsyncClient` whose requests go through quotaflow's stack.

    Takes the same arguments as :func:`make_client`; ``transport`` is async.

    Raises:
        ConfigError: a setting is invalid; the message names it.

    .. versionadded:: 0.1
    """
    return cast(httpx.AsyncClient, _build(_ASYNC, transport, httpx_kwargs, **_arguments(locals())))


@attrs.frozen
class _Flavour:
    """The sync or async classes of one stack."""

    base: type
    network: Callable[..., Any]
    storage: str
    retaining: Callable[..., Any]
    fallback: Callable[..., Any]
    caching: Callable[..., Any]
    ratelimit: Callable[..., Any]
    room: Callable[[ShortWindow, Clock], Any]
    client: Callable[..., Any]


_SYNC = _Flavour(
    httpx.BaseTransport,
    network_transport,
    "storage",
    RetainingStorage,
    FallbackTransport,
    CachingTransport,
    RateLimitTransport,
    WaitRoom,
    httpx.Client,
)
_ASYNC = _Flavour(
    httpx.AsyncBaseTransport,
    async_network_transport,
    "async_storage",
    AsyncRetainingStorage,
    AsyncFallbackTransport,
    AsyncCachingTransport,
    AsyncRateLimitTransport,
    AsyncWaitRoom,
    httpx.AsyncClient,
)


def _arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """make_client's own arguments, as load_settings takes them."""
    return {k: v for k, v in arguments.items() if k not in ("transport", "httpx_kwargs")}


def _build(
    flavour: _Flavour, transport: Any, httpx_kwargs: dict[str, Any], **arguments: Any
) -> Any:
    """Check the settings, then build Fallback -> Caching -> RateLimit -> transport."""
    _check_arguments(flavour, httpx_kwargs)
    network = _split(httpx_kwargs)
    if transport is not None and not isinstance(transport, flavour.base):
        kind = f"httpx.{flavour.base.__name__}"
        raise ConfigError(f"transport: expected an {kind}, not {type(transport).__name__}")
    # Before any state is opened: a bad proxy variable fails here, leaking nothing.
    # The transport given (or the network's), and the mounts routed over it as httpx
    # routes them: every route below the whole stack.
    if transport is None:
        network = shared_tls(network)
    if transport is None and flavour is _SYNC:
        inner = shared_network(flavour.network, network)
    else:
        inner = flavour.network(transport, **network)
    try:
        runtime = Runtime(load_settings(**arguments))
    except BaseException:
        if isinstance(inner, SharedTransport):
            inner.close()  # let go of the shared pool: this client never came to be
        raise
    stack = _stack(flavour, inner, runtime)
    client = flavour.client(transport=stack, **httpx_kwargs)
    _PARTS[client] = runtime
    return client


def _stack(flavour: _Flavour, inner: Any, runtime: Runtime) -> Any:
    """Fallback -> Caching -> RateLimit -> ``inner``, on one runtime."""
    settings = runtime.settings
    hishel_storage = getattr(runtime.backend, flavour.storage)()
    # Bodies past max_body stream through unstored (hishel stops keeping them).
    hishel_storage.max_stream_size = settings.max_body
    known = runtime.known
    resources = runtime.router.stored_profile  # URLs the router made clean, and their profile
    storage = flavour.retaining(hishel_storage, runtime.registry, runtime.clock, known, resources)
    runtime.storage = storage
    # The async stack reads fresh stored answers in one worker-thread hop, if the
    # backend has a blocking storage for that (its async one hops once per SQL call).
    # SQLite's async storage runs a blocking one already: that one reads.
    blocking = getattr(hishel_storage, "blocking", None)
    reader = {"reader": blocking or runtime.backend.reader()} if flavour is _ASYNC else {}
    return flavour.fallback(
        flavour.caching(
            flavour.ratelimit(inner, runtime.limiter, runtime.wait_rooms(flavour.room)),
            storage,
            runtime.policy,
            runtime.hot,
            runtime.flights,
            settings.cache,
            cold=runtime.cold,
            known=known,
            **reader,
        ),
        runtime.router,
        storage,
        runtime.limiter,
        settings.fallback and settings.cache,
        network=inner,
        known=known,
        policy=runtime.policy if settings.cache else None,
        flights=runtime.flights,
    )
