from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs
import httpx

from ._defaults import (
    DEFAULT_ALERTS,
    DEFAULT_MAX_WAIT,
    DEFAULT_RESERVES,
    DEFAULT_SECRET_HEADERS,
    DEFAULT_SECRET_PARAMS,
    REVALIDATION_WINDOW,
    SESSION_HEADERS,
    Verdict,
)
from ._fields import (
    Pace,
    _alerts,
    _checked,
    _hosts,
    _Malformed,
    _max_stale,
    _max_wait,
    _methods,
    _names,
    _numbers_in,
    _pace,
    _reserves,
    _tuple,
    duration,
    optional_duration,
    parse_duration,
    split_host,
    url_port,
)
from ._priority import Priority
from ._readings import Quota, QuotaHeaders, QuotaReading, Rate, WindowHeaders, WindowReading
from ._snapshots import Snapshot

# ApiProfile's own module; the names below it uses are imported from where they live
# (_defaults, _fields, _readings) and re-exported here, where the rest of the code finds
# them. Plugins, their discovery and the Registry live in _plugins.
__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_SECRET_HEADERS",
    "DEFAULT_SECRET_PARAMS",
    "SESSION_HEADERS",
    "ApiProfile",
    "FreshnessRule",
    "Quota",
    "QuotaHeaders",
    "QuotaReading",
    "Rate",
    "Verdict",
    "WindowHeaders",
    "WindowReading",
    "parse_duration",
]


class FreshnessRule(Protocol):
    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        """Seconds the response stays fresh, or None to defer to its HTTP headers."""


def _no_reading(response: httpx.Response) -> QuotaReading:
    return QuotaReading()


def _probe_path(instance: object, attribute: object, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ValueError(f"{value!r} is not a path (it starts with '/')")


def reads_quota(profile: ApiProfile) -> bool:
    """Whether the profile reads the API's own count of its quota from answers."""
    return profile.read_quota is not _no_reading


def _unit_cost(request: httpx.Request) -> int:
    return 1


def _status_verdict(response: httpx.Response) -> Verdict:
    return "ok"


def _lower(names: Iterable[str]) -> tuple[str, ...]:
    found = _tuple(names)
    if isinstance(found, _Malformed):
        return found
    return tuple(name.lower() if isinstance(name, str) else name for name in found)


@attrs.frozen(kw_only=True)
class ApiProfile:
    """Everything quotaflow knows about one API.

    Args:
        name: unique name, shown in :class:`ResponseInfo` and errors.
        hosts: host names it matches; ``"*.example.com"`` matches subdomains; a host
            with a port (``"localhost:8080"``, ``"[::1]:8080"``) matches that port only
            (the scheme's default included), a bare host any port.
        path_prefix: only URLs whose path starts with it match.
        rates: short-window rates (requests wait for them).
        quota: the long-window quota (requests that would breach a reserve are refused).
        reserves: per priority, the fraction of the quota it must leave untouched.
        max_wait: per priority, seconds a request may wait for a short-window rate.
        cost: quota units a request is estimated to spend before it is sent.
        read_quota: reads the API's own report of the quota from a response.
        read_window: reads the API's own report of its short window from a response
            (e.g. :class:`WindowHeaders`); when it says none is left, the profile
            holds off until the window resets (see :class:`WindowReading`), so that
            requests other clients made on the same key do not earn us a 429.
            None: the rates alone decide.
        freshness: ``(request, response, now) -> seconds | None``; seconds override
            the HTTP caching headers, None defers to them.
        default_ttl: freshness of an answer that says nothing of its own (no
            ``max-age``, ``Expires``, ``no-store`` or ``no-cache``) and that the
            freshness rule gives none (or fails on); None: the client's
            ``default_ttl``, else such answers are not stored.
        max_stale: seconds past its freshness a stored answer may still be served
            when upstream fails or the quota refuses; or a mapping of priority to
            seconds, e.g. ``{"critical": 900, "normal": 86400}`` (a priority left out
            takes the limit of the nearest more urgent one named). Stored answers are
            kept for the longest.
        revalidation_window: seconds past its freshness a stored answer that carries
            a validator (``ETag`` or ``Last-Modified``) is kept, so that a conditional
            request can renew it instead of fetching it whole. A stored answer is kept
            for its freshness plus the longer of ``max_stale`` and this (this only if
            it has a validator), counted from when it was stored; then it is deleted.
        secret_params: query parameters never stored, keyed on, or logged.
        secret_headers: request headers never stored, keyed on, or logged.
        classify: tells errors in disguise and quota exhaustion from a response.
        limited_methods: methods that spend rate and quota (safe methods by default).
        retries: how many times an idempotent request is retried after a network error,
            a timeout, 502, 503, 504 or 429 (each retry spends quota and is counted).
        backoff: base of the exponential backoff with full jitter, in seconds; a
            ``Retry-After`` from the API wins. Retries stay within the priority's max_wait.
        backoff_max: the longest single backoff, in seconds.
        breaker_threshold: upstream failures in a row that open the circuit (0: never).
        breaker_cooldown: seconds the circuit stays open before one probe is let through.
        shared_answers: the API answers every credential alike (The Odds API's odds are
            the same for every key), so requests with different credentials may share
            stored answers; or ``(url) -> bool``, saying so per URL (an account's own
            endpoint must not be shared). False (the default): the credentials a request carries
            (secret parameters and headers, URL userinfo) partition the cache, and
            each is only ever answered with what was fetched with it. The quota ledger
            keeps one account per credential either way.
        reads_body: ``classify``, ``read_quota`` or ``freshness`` read the response
            body, so quotaflow reads it (up to the client's ``max_body``) before they
            run. False (the default): they see the headers only (the body is not yet
            read) and every answer streams to the caller as it arrives.
        pace: ``"even"``: NORMAL and LOW requests are held to an even spend plan to the
            quota's reset: by now, the elapsed share of the quota, less the priority's
            reserve (what more urgent requests may always spend ahead of the plan),
            plus 1 % (so that the first request of a period goes). HIGH and CRITICAL
            spend ahead of it, within their reserves. A held request is refused with
            :class:`QuotaExhausted` (or answered stale within ``max_stale``). Keep the
            reserves small with a pace (a few percent): a priority waits until the plan
            has passed its reserve. Or 24 weights, one per UTC hour from 00:00 (a list
            in TOML): the same plan, with each hour's share of the quota in proportion
            to its weight (``[0]*8 + [1]*10 + [3]*6``: nothing at night, most in the
            evening). None (the default): no plan, the reserves alone.
        alerts: low-quota thresholds: a float is a share of the quota left (``0.10``),
            an int a number of units left. Each time the quota falls to or below one,
            a :class:`quotaflow.events.QuotaLow` event is emitted and a WARNING logged.
        immutable: ``(request, response) -> seconds | None``: the answer never
            changes (``math.inf``) or stays as it is for that long, so it goes to the
            cold store (``cold.db``), kept for that long whatever its freshness, bounded
            by the client's ``cold_bytes`` only (least recently used first). None: an
            ordinary answer. It reads the body only on a ``reads_body`` profile;
            elsewhere it must judge by the request alone.
        normalize: ``request -> URL | None``: the URL the API answers exactly as it
            answers the request (The Odds API: a historical ``date`` rounded down to
            the snapshot grid), used as the request's URL before anything else sees
            it, so that equivalent requests share one stored answer. None: unchanged.
        snapshot: ``(request, response | None) -> Snapshot | None``: for an archive
            keyed by a moment, the window of time an immutable answer covers (with
            the response), or the moment a request asks for (response None); the cold
            store then answers any request inside a window it holds.
        probe: the path of a free request that answers with the quota headers (The
            Odds API: ``/v4/sports``), sent once, with the request's credentials, when
            the ledger was lost (its remaining unknown), before spending on a guess.

    Raises:
        ConfigError: a field is invalid; the message names it.

    Every duration (``default_ttl``, ``max_stale``, ``revalidation_window``,
    ``backoff``, ``backoff_max``, ``breaker_cooldown``, ``max_wait`` values) is
    seconds or a string with a unit, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``
    (:func:`parse_duration`), and is stored as seconds.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Durations with units; hosts with ports.
    .. versionchanged:: 0.3
       ``immutable``, ``normalize`` and ``snapshot`` (the cold tier).
    """

    name: str = attrs.field(
        validator=_checked(attrs.validators.instance_of(str), attrs.validators.min_len(1))
    )
    hosts: tuple[str, ...] = attrs.field(converter=_lower, validator=_checked(_hosts))
    path_prefix: str = attrs.field(
        default="", validator=_checked(attrs.validators.instance_of(str))
    )
    rates: tuple[Rate, ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_checked(attrs.validators.deep_iterable(attrs.validators.instance_of(Rate))),
    )
    quota: Quota | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.instance_of(Quota))),
    )
    reserves: Mapping[Priority, float] = attrs.field(
        factory=lambda: dict(DEFAULT_RESERVES),
        converter=_reserves,
        validator=_checked(_numbers_in(0.0, 1.0)),
    )
    max_wait: Mapping[Priority, float] = attrs.field(
        factory=lambda: dict(DEFAULT_MAX_WAIT),
        converter=_max_wait,
        validator=_checked(_numbers_in(0.0, None)),
    )
    cost: Callable[[httpx.Request], int] = attrs.field(
        default=_unit_cost, validator=_checked(attrs.validators.is_callable())
    )
    read_quota: Callable[[httpx.Response], QuotaReading] = attrs.field(
        default=_no_reading, validator=_checked(attrs.validators.is_callable())
    )
    freshness: FreshnessRule | None = attrs.field(
        default=None, validator=_checked(attrs.validators.optional(attrs.validators.is_callable()))
    )
    default_ttl: float | None = attrs.field(
        default=None, converter=optional_duration, validator=_checked()
    )
    max_stale: float = attrs.field(default=0.0, converter=_max_stale, validator=_checked())
    revalidation_window: float = attrs.field(
        default=REVALIDATION_WINDOW, converter=duration, validator=_checked()
    )
    secret_params: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_checked(_names)
    )
    secret_headers: tuple[str, ...] = attrs.field(
        default=(), converter=_lower, validator=_checked(_names)
    )
    classify: Callable[[httpx.Response], Verdict] = attrs.field(
        default=_status_verdict, validator=_checked(attrs.validators.is_callable())
    )
    limited_methods: frozenset[str] = attrs.field(
        default=frozenset({"GET", "HEAD"}), converter=_methods, validator=_checked()
    )
    retries: int = attrs.field(
        default=2,
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.ge(0)),
    )
    backoff: float = attrs.field(
        default=0.5,
        converter=duration,
        validator=_checked(attrs.validators.gt(0)),
    )
    backoff_max: float = attrs.field(
        default=8.0,
        converter=duration,
        validator=_checked(attrs.validators.gt(0)),
    )
    breaker_threshold: int = attrs.field(
        default=5,
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.ge(0)),
    )
    breaker_cooldown: float = attrs.field(default=30.0, converter=duration, validator=_checked())
    # Added last: positional construction of the earlier fields keeps working.
    read_window: Callable[[httpx.Response], WindowReading] | None = attrs.field(
        default=None, validator=_checked(attrs.validators.optional(attrs.validators.is_callable()))
    )
    shared_answers: bool | Callable[[httpx.URL], bool] = attrs.field(
        default=False,
        validator=_checked(
            attrs.validators.or_(attrs.validators.instance_of(bool), attrs.validators.is_callable())
        ),
    )
    reads_body: bool = attrs.field(
        default=False, validator=_checked(attrs.validators.instance_of(bool))
    )
    pace: Pace | None = attrs.field(default=None, converter=_pace, validator=_checked())
    alerts: tuple[float, ...] = attrs.field(
        default=DEFAULT_ALERTS, converter=_alerts, validator=_checked()
    )

    def stale_limit(self, priority: Priority) -> float:
        """Seconds past its freshness a stored answer may stand in for a request of
        ``priority`` (``max_stale``, or its entry for the priority)."""
        limits = getattr(self.max_stale, "by_priority", None)
        return float(self.max_stale) if limits is None else float(limits[priority])

    def alert_levels(self, total: int) -> tuple[int, ...]:
        """The ``alerts`` as units left of a quota of ``total``, highest first."""
        levels = {
            int(item) if isinstance(item, int) else math.floor(item * total + 1e-9)
            for item in self.alerts
        }
        return tuple(sorted(levels, reverse=True))

    # Added with the cold tier (``_cold.py``), last for the same reason.
    immutable: Callable[[httpx.Request, httpx.Response], float | None] | None = attrs.field(
        default=None, validator=_checked(attrs.validators.optional(attrs.validators.is_callable()))
    )
    normalize: Callable[[httpx.Request], httpx.URL | None] | None = attrs.field(
        default=None, validator=_checked(attrs.validators.optional(attrs.validators.is_callable()))
    )
    snapshot: Callable[[httpx.Request, httpx.Response | None], Snapshot | None] | None = (
        attrs.field(
            default=None,
            validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
        )
    )

    probe: str | None = attrs.field(default=None, validator=_checked(_probe_path))

    def matches(self, url: httpx.URL) -> bool:
        """Whether this profile describes ``url``: its host (and port, for a pattern
        that names one: ``"localhost:8080"`` matches that port only; a bare host
        matches any port) and its path."""
        host, port = url.host.lower(), url_port(url)
        return url.path.startswith(self.path_prefix) and any(
            _host_matches(pattern, host, port) for pattern in self.hosts
        )


def _host_matches(pattern: str, host: str, port: int | None) -> bool:
    name, wanted = split_host(pattern)
    if wanted is not None and wanted != port:
        return False
    return host == name or (name.startswith("*.") and host.endswith(name[1:]))


#: Requests that match no profile: plain RFC 9111 caching, no limits, no fallback.
DEFAULT_PROFILE = ApiProfile(
    name="default", hosts=("*",), limited_methods=(), retries=0, breaker_threshold=0
)
