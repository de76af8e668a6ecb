from __future__ import annotations

import difflib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import attrs
import httpx

from . import _config, events
from ._clock import Clock
from ._cold import COLD_BYTES, COLD_FILE, ColdStore, SqliteColdStore
from ._credentials import Fingerprints
from ._flight import Gate
from ._hot import HotTier
from ._network import async_network_transport, network_transport
from ._plan import _PARTS
from ._profiles import ApiProfile, Registry, resolve_plugins
from ._retention import AsyncRetainingStorage, RetainingStorage
from ._rules import cache_rules
from ._secrets import redact_logs
from ._state._backend import STATE_FILE, Backend
from ._state._breaker import Breaker
from ._state._counters import Counters
from ._state._db import StateDB
from ._state._short import ShortWindow
from ._state._sqlite import SqliteBackend
from ._state._waitroom import AsyncWaitRoom, WaitRoom
from ._transports._async_cache import AsyncCachingTransport
from ._transports._core import MAX_BODY, Policy
from ._transports._fallback import AsyncFallbackTransport, FallbackTransport
from ._transports._limiter import Limiter
from ._transports._ratelimit import AsyncRateLimitTransport, RateLimitTransport
from ._transports._route import Router
from ._transports._sync_cache import CachingTransport
from .events import Emitter, Subscriber
from .exceptions import ConfigError

__all__ = ["make_async_client", "make_client"]

R = TypeVar("R")
logger = logging.getLogger("quotaflow")

# Every entry quotaflow stores gets a TTL of its own (_retention.py). This is Redis's
# default_ttl, a backstop for anything stored without one (hishel's own is 3600 s, shorter
# than many a max_stale): the longest max_stale plus the longest freshness a shipped rule
# assigns (historical odds, 30 days).
RETENTION = 31 * 86400.0
# Client arguments that only shape the network transport: when quotaflow builds that
# transport itself, they go to it (httpx ignores them once a transport is given), and
# proxy= and the proxy environment variables choose proxies as httpx.Client would
# (_network.py).
_TRANSPORT_ARGS = ("verify", "cert", "http1", "http2", "limits", "proxy", "trust_env", "mounts")


def default_state_dir() -> Path:
    """``$QUOTAFLOW_HOME``, else the user cache directory (``~/.cache/quotaflow``)."""
    if home := os.environ.get("QUOTAFLOW_HOME"):
        return Path(home).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "quotaflow"


# Temporary state directories made in place of an unwritable one: removed with the
# client that made them.
_FALLBACKS: set[Path] = set()


def _remove_fallback(directory: Path) -> Callable[[], None]:
    def remove() -> None:
        _FALLBACKS.discard(directory)
        shutil.rmtree(directory, ignore_errors=True)

    return remove


def _state_dir(state_dir: str | os.PathLike[str] | None) -> Path:
    """The state directory, made if need be: private to the user (0700) when quotaflow
    makes it. One that cannot be written (read-only, or no space left, even to make it)
    gives way to a private temporary directory for this process, with one warning."""
    import errno

    if state_dir is not None and not isinstance(state_dir, str | os.PathLike):
        raise ConfigError(f"state_dir: expected a path, not {type(state_dir).__name__}")
    if state_dir is not None and not os.fspath(state_dir):
        raise ConfigError("state_dir: empty; give a directory (or None for the default)")
    try:
        path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    except RuntimeError as exc:  # "~nobody-here/x": no such user's home
        raise ConfigError(f"state_dir: {state_dir!s}: {exc}") from None
    if path.exists() and not path.is_dir():
        raise ConfigError(f"state_dir: {path} is not a directory")
    try:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise ConfigError(f"state_dir: cannot create {path}: {exc.strerror}") from exc
            raise
        # A byte written, not only a name: a full disk still has room for an empty file.
        with tempfile.TemporaryFile(dir=path) as probe:
            probe.write(b"\0")
            probe.flush()
    except OSError as exc:
        # A read-only or full state directory must not stop the program: keep state
        # for this process only, and say so once.
        fallback = Path(tempfile.mkdtemp(prefix="quotaflow-"))
        _FALLBACKS.add(fallback)
        logger.warning(
            "quotaflow: state_dir %s is not writable (%s); using %s for this process",
            path,
            exc.strerror,
            fallback,
        )
        return fallback
    return path


def configured(
    profiles: Iterable[ApiProfile] | None,
    plugins: bool,
    config: str | os.PathLike[str] | bool | None,
    directory: Path | None = None,
    secrets: tuple[Iterable[str], Iterable[str]] = ((), ()),
) -> tuple[Registry, list[Subscriber], _config.Settings]:
    """The profiles as every entry point sees them (make_client, plan, status, the
    dashboard): the plugins', then ``profiles``, then the configuration file's changes
    and APIs; the plugins' subscribers (started for ``directory`` when given); the
    settings read."""
    registry, found = resolve_plugins(profiles, plugins, directory)
    settings = _config.load(config)
    params, headers = (_names(name, value) for name, value in zip(_SECRETS, secrets, strict=True))
    applied = _config.apply(settings, registry.profiles)
    return Registry(applied, params, headers), found, settings


_SECRETS = ("secret_params", "secret_headers")


def _names(field: str, value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(name, str) and name for name in value):
        raise ConfigError(f"{field}: expected a list of names, not {value!r}")
    return tuple(value)


def _backend(
    directory: Path, registry: Registry, redis_url: str | None, prefix: str, fail: str
) -> Backend:
    redis_url = redis_url if redis_url is not None else os.environ.get("QUOTAFLOW_REDIS_URL")
    if fail not in ("open", "closed"):
        raise ConfigError(f"redis_fail: expected 'open' or 'closed', not {fail!r}")
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"redis_prefix: expected a non-empty string, not {prefix!r}")
    if not redis_url:
        return SqliteBackend(directory)
    try:
        from ._state._redis import redis_backend
    except ImportError as exc:  # the extra is not installed
        raise ConfigError(
            f"redis_url: needs the redis extra: pip install 'quotaflow[redis]' ({exc})"
        ) from exc
    # Entries must outlive their freshness plus the longest fallback window.
    retention = max((p.max_stale for p in registry.profiles), default=0.0) + RETENTION
    return redis_backend(
        redis_url, prefix=prefix, fail=fail, directory=directory, retention=retention
    )


class _Parts:
    """What both stacks share once the settings are checked."""

    def __init__(
        self,
        *,
        profiles: Iterable[ApiProfile] | None,
        plugins: bool,
        state_dir: str | os.PathLike[str] | None,
        clock: Clock | None,
        redis: tuple[str | None, str, str],
        hot_entries: int,
        hot_bytes: int,
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
        cold_bytes: int = COLD_BYTES,
    ) -> None:
        for name, value in (
            ("hot_entries", hot_entries),
            ("hot_bytes", hot_bytes),
            ("max_body", max_body),
            ("cold_bytes", cold_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: expected a whole number >= 0, not {value!r}")
        if retries is not None and (
            not isinstance(retries, bool | int) or (not isinstance(retries, bool) and retries < 0)
        ):
            raise ConfigError(
                f"retries: expected True, False or a whole number >= 0, not {retries!r}"
            )
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock: expected a quotaflow.Clock, not {type(clock).__name__}")
        self.directory = _state_dir(state_dir)
        self.registry, found, settings = configured(
            profiles, plugins, config, self.directory, (secret_params, secret_headers)
        )
        chosen = {"cache": cache, "rate_limit": rate_limit, "fallback": fallback}
        self.flags: dict[str, bool] = {}
        for flag, choice in chosen.items():
            if choice is not None and not isinstance(choice, bool):
                raise ConfigError(f"{flag}: expected True, False or None, not {choice!r}")
            self.flags[flag] = choice if choice is not None else settings.flags.get(flag, True)
        if subscribers is not None and (
            isinstance(subscribers, str) or not all(callable(s) for s in subscribers)
        ):
            raise ConfigError("subscribers: expected a list of callables taking an event")
        self.extra_subscribers = [*found, *(subscribers or ())]
        self.clock = clock or Clock()
        self.backend = _backend(self.directory, self.registry, *redis)
        # The status counters live in the local state file, whatever the backend.
        db = self.backend.db if isinstance(self.backend, SqliteBackend) else None
        self.counters = Counters(
            db or StateDB(self.directory / STATE_FILE), self.clock, own=db is None
        )
        self.emit = Emitter([self.counters, *self.extra_subscribers])
        self.windows = {
            profile.name: ShortWindow(profile, self.backend.window_store(f"rate:{profile.name}"))
            for profile in self.registry.profiles
        }
        breakers = {
            profile.name: Breaker(
                profile.name,
                profile.breaker_threshold,
                profile.breaker_cooldown,
                self._circuit_changed(profile.name),
            )
            for profile in self.registry.profiles
            if profile.breaker_threshold > 0
        }
        self.limiter = Limiter(
            self.backend,
            self.clock,
            self.windows,
            breakers,
            self.emit,
            self.flags["rate_limit"],
            retries=retries,
            max_body=max_body,
        )
        if self.directory in _FALLBACKS:
            # Last, once the state files in it are closed.
            self.limiter.on_close.append(_remove_fallback(self.directory))
        self.policy = Policy(
            self.clock,
            max_body,
            cache_rules(
                default_ttl if default_ttl is not None else settings.default_ttl,
                url_rules if url_rules is not None else settings.url_rules,
            ),
        )
        self.router = Router(self.registry, Fingerprints(self.backend.fingerprint_key()))
        self.hot = HotTier(hot_entries, hot_bytes, max_body)
        self.gate = Gate(self.backend.leases, self.clock)
        # Answers that never change: only for profiles that mark some (a file of its own).
        self.cold: ColdStore | None = None
        if any(profile.immutable is not None for profile in self.registry.profiles):
            secrets = self.registry.secret_params
            self.cold = self.backend.cold_store(cold_bytes, secrets) or SqliteColdStore(
                self.directory / COLD_FILE, cold_bytes, secrets
            )
        self.storage: Any = None  # the hishel storage of the stack built on these parts
        redact_logs(self.registry.secret_params)

    def _circuit_changed(self, profile: str) -> Callable[[str], None]:
        def changed(state: str) -> None:
            if self.emit.active:
                self.emit(events.CircuitChanged(profile, self.clock.time(), state))

        return changed

    def rooms(self, kind: Callable[[ShortWindow, Clock], R]) -> dict[str, R]:
        return {name: kind(window, self.clock) for name, window in self.windows.items()}


def _check_arguments(flavour: Any, httpx_kwargs: dict[str, Any]) -> None:
    """Name an argument neither quotaflow nor httpx takes here, not deep in httpx."""
    known = set(inspect.signature(flavour.client).parameters) - {"self", "transport"}
    ours = set(inspect.signature(make_client).parameters) - {"httpx_kwargs"}
    for name in httpx_kwargs:
        if name not in known:
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
        **httpx_kwargs: everything else goes to :class:`httpx.Client`.

    Raises:
        ConfigError: a setting is invalid; the message names it.

    .. versionadded:: 0.1
    """
    return cast(httpx.Client, _build(_SYNC, transport, httpx_kwargs, **_settings(locals())))


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
    **httpx_kwargs: Any,
) -> httpx.AsyncClient:
    """Build an :class:`httpx.AsyncClient` whose requests go through quotaflow's stack.

    Takes the same arguments as :func:`make_client`; ``transport`` is async.

    Raises:
        ConfigError: a setting is invalid; the message names it.

    .. versionadded:: 0.1
    """
    return cast(httpx.AsyncClient, _build(_ASYNC, transport, httpx_kwargs, **_settings(locals())))


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


def _settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """make_client's own arguments, as _Parts takes them."""
    settings = {k: v for k, v in arguments.items() if k not in ("transport", "httpx_kwargs")}
    settings["redis"] = (
        settings.pop("redis_url"),
        settings.pop("redis_prefix"),
        settings.pop("redis_fail"),
    )
    return settings


def _build(flavour: _Flavour, transport: Any, httpx_kwargs: dict[str, Any], **settings: Any) -> Any:
    """Check the settings, then build Fallback -> Caching -> RateLimit -> transport."""
    _check_arguments(flavour, httpx_kwargs)
    network = _split(httpx_kwargs)
    if transport is not None and not isinstance(transport, flavour.base):
        kind = f"httpx.{flavour.base.__name__}"
        raise ConfigError(f"transport: expected an {kind}, not {type(transport).__name__}")
    # Before any state is opened: a bad proxy variable fails here, leaking nothing.
    # The transport given (or the network's), and the mounts routed over it as httpx
    # routes them: every route below the whole stack.
    inner = flavour.network(transport, **network)
    parts = _Parts(**settings)
    hishel_storage = getattr(parts.backend, flavour.storage)()
    # Bodies past max_body stream through unstored (hishel stops keeping them).
    hishel_storage.max_stream_size = parts.limiter.max_body
    storage = flavour.retaining(hishel_storage, parts.registry, parts.clock)
    flags = parts.flags
    # The async stack reads fresh stored answers in one worker-thread hop, if the
    # backend has a blocking storage for that (its async one hops once per SQL call).
    reader = {"reader": parts.backend.reader()} if flavour is _ASYNC else {}
    stack = flavour.fallback(
        flavour.caching(
            flavour.ratelimit(inner, parts.limiter, parts.rooms(flavour.room)),
            storage,
            parts.policy,
            parts.hot,
            parts.gate,
            flags["cache"],
            cold=parts.cold,
            **reader,
        ),
        parts.router,
        storage,
        parts.limiter,
        flags["fallback"] and flags["cache"],
    )
    client = flavour.client(transport=stack, **httpx_kwargs)
    parts.storage = storage
    _PARTS[client] = parts
    return client
