from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, cast

import attrs
import httpx

from ._priority import Priority
from ._snapshots import Snapshot
from .exceptions import ConfigError

__all__ = [
    "ApiProfile",
    "Plugin",
    "Quota",
    "QuotaHeaders",
    "QuotaReading",
    "Rate",
    "Verdict",
    "WindowHeaders",
    "WindowReading",
    "parse_duration",
]

logger = logging.getLogger("quotaflow")

#: What a response means to quotaflow, as a profile's ``classify`` tells it:
#: ``"ok"``; ``"error"`` (an error, even one dressed as a 200: never stored, eligible
#: for fallback); ``"quota_exhausted"`` (the API says the quota is gone).
Verdict: TypeAlias = Literal["ok", "error", "quota_exhausted"]

ENTRY_POINT_GROUP = "quotaflow.plugins"

DEFAULT_RESERVES: Mapping[Priority, float] = {
    Priority.CRITICAL: 0.0,
    Priority.HIGH: 0.05,
    Priority.NORMAL: 0.2,
    Priority.LOW: 0.5,
}
DEFAULT_MAX_WAIT: Mapping[Priority, float] = {
    Priority.CRITICAL: 30.0,
    Priority.HIGH: 10.0,
    Priority.NORMAL: 5.0,
    Priority.LOW: 0.0,
}
# Low-quota alerts: a share of the quota left (float) or units left (int).
DEFAULT_ALERTS: tuple[float, ...] = (0.10,)
# Credentials that never reach a cache key, the disk or a log, whatever the profile
# (requests-cache ignores the same ones by default).
# Names are matched in any casing. Each one a request carries also partitions the cache
# (see _credentials): a name that is no secret costs nothing but its redaction.
DEFAULT_SECRET_PARAMS = (
    "api_key",
    "apiKey",
    "apikey",
    "api-key",
    "access_token",
    "auth_token",
    "token",
    "key",
    "client_secret",
    "password",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
DEFAULT_SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-apikey",
    "x-api-token",
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-goog-api-key",
    "x-rapidapi-key",
    "ocp-apim-subscription-key",
    "x-amz-security-token",
)
# Credentials that name the caller's session rather than its API key: they partition
# the cache, but are no quota account of their own.
SESSION_HEADERS = frozenset({"cookie", "proxy-authorization"})
# How long a stale answer with a validator is kept for a conditional request (seconds).
REVALIDATION_WINDOW = 86400.0


def _checked(*validators: Any) -> Any:
    """Run attrs validators, turning their errors into a ConfigError naming the field."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, _Malformed):  # a converter could not read it
            owner = type(instance).__name__
            raise ConfigError(f"{owner}.{attribute.name}: {value.message}")
        for validator in validators:
            try:
                validator(instance, attribute, value)
            except ConfigError:
                raise
            except (TypeError, ValueError) as exc:
                owner = type(instance).__name__
                raise ConfigError(f"{owner}.{attribute.name}: {exc.args[0]}") from None

    return validate


_DURATION = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,15})?)\s*([smhd]?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from a duration: a number of seconds (``30``, ``0.5``) or a string with
    a unit, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` (a bare ``"90"`` is seconds too).

    Every duration quotaflow takes (in code, ``quotaflow.toml`` or the environment)
    is read by this one function.

    Raises:
        ValueError: not a duration, negative or not finite (``"30x"``, ``-5``,
            ``"thirty"``, ``True``).

    .. versionadded:: 0.2
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value)) is not None:
        seconds = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            "expected a duration: seconds (>= 0) or a string such as '30s', '5m', '1h' "
            f"or '1d', not {value!r}"
        )
    return seconds


@attrs.frozen
class _Malformed:
    """A value a converter could not read, until the field's validator (every one is
    wrapped by :func:`_checked`) names the field in the error: a converter is not
    told its field. Strictly private."""

    message: str


def duration(value: float | str) -> float:
    """The attrs converter of every duration field: seconds (see :func:`parse_duration`).

    A malformed value is refused by the field's validator (:func:`_checked`), which
    names the field.
    """
    try:
        return parse_duration(value)
    except ValueError as exc:
        return cast(float, _Malformed(exc.args[0]))


def optional_duration(value: float | str | None) -> float | None:
    """:func:`duration`, None kept."""
    return None if value is None else duration(value)


def _within_limit(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    # More at once than in a whole window could never be spent: say so.
    if value is not None and value > instance.limit:
        raise ValueError(f"must be at most the limit ({instance.limit}), not {value!r}")


def _finite(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {value!r}")


def _priority_map(
    value: Any, defaults: Mapping[Priority, float], field: str, durations: bool = False
) -> dict[Priority, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"ApiProfile.{field}: expected a mapping of priority to number, not {value!r}"
        )
    merged = dict(defaults)
    for key, number in value.items():
        priority = Priority.parse(key, field=f"ApiProfile.{field}")
        if durations:
            try:
                number = parse_duration(number)
            except ValueError as exc:
                raise ConfigError(f"ApiProfile.{field}: {priority}: {exc.args[0]}") from None
        merged[priority] = number
    return merged


def _reserves(value: Any) -> dict[Priority, float]:
    return _priority_map(value, DEFAULT_RESERVES, "reserves")


def _max_wait(value: Any) -> dict[Priority, float]:
    return _priority_map(value, DEFAULT_MAX_WAIT, "max_wait", durations=True)


class StaleLimits(float):
    """``ApiProfile.max_stale`` given per priority. As a number it is the longest limit
    (how long stored answers are kept); :meth:`ApiProfile.stale_limit` gives each
    priority's own. Strictly private: build it by passing a mapping to ``max_stale``."""

    by_priority: Mapping[Priority, float]

    def __new__(cls, limits: Mapping[Priority, float]) -> StaleLimits:
        self = super().__new__(cls, max(limits.values()))
        self.by_priority = dict(limits)
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StaleLimits):
            return self.by_priority == other.by_priority
        if isinstance(other, int | float):  # a plain number: the same limit for all
            return all(limit == other for limit in self.by_priority.values())
        return NotImplemented

    def __reduce__(self) -> tuple[type[StaleLimits], tuple[dict[Priority, float]]]:
        # Pickled (and copied) by its limits: __new__ takes them, not a number.
        return (StaleLimits, (dict(self.by_priority),))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        limits = tuple(self.by_priority[p] for p in Priority)
        # Equal to a plain number when every limit is that number: hashed alike then.
        return hash(limits[0]) if len(set(limits)) == 1 else hash(limits)

    def __repr__(self) -> str:
        limits = ", ".join(f"{p.value!r}: {v!r}" for p, v in self.by_priority.items())
        return f"{{{limits}}}"


def _max_stale(value: Any) -> Any:
    """A number, as given; a mapping of priority to number: a :class:`StaleLimits`.

    A priority the mapping leaves out takes the limit of the nearest more urgent one
    named (the stricter side); those above every named one take the first named.
    """
    if not isinstance(value, Mapping):
        return duration(value)
    given: dict[Priority, Any] = {}
    for key, number in value.items():
        level = Priority.parse(key, field="ApiProfile.max_stale")
        try:
            given[level] = parse_duration(number)
        except ValueError as exc:
            raise ConfigError(f"ApiProfile.max_stale: {level}: {exc.args[0]}") from None
    if not given:
        raise ConfigError("ApiProfile.max_stale: a mapping must name at least one priority")
    order = list(Priority)  # most urgent first
    first = next(given[p] for p in order if p in given)
    limits: dict[Priority, float] = {}
    current = first
    for level in order:
        current = given.get(level, current)
        limits[level] = float(current)
    return StaleLimits(limits)


def _alerts(value: Any) -> tuple[float, ...]:
    items = _tuple([value] if isinstance(value, int | float) else value)
    if isinstance(items, _Malformed):  # not a list: the validator names the field
        return items
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"ApiProfile.alerts: {item!r} is not a number")
        if isinstance(item, float) and not 0.0 <= item <= 1.0:
            raise ConfigError(
                f"ApiProfile.alerts: {item!r}: a share of the quota is between 0.0 and 1.0"
                " (a whole number of units is an int)"
            )
        if isinstance(item, int) and item < 0:
            raise ConfigError(f"ApiProfile.alerts: {item!r}: units left must be >= 0")
    return items


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return tuple(value)
    return cast(tuple[Any, ...], _Malformed(f"expected a list, not {value!r}"))


def _methods(value: Iterable[str]) -> frozenset[str]:
    methods = _tuple(value)
    if isinstance(methods, _Malformed):
        return cast(frozenset[str], methods)
    if not all(isinstance(method, str) and method.strip() for method in methods):
        return cast(frozenset[str], _Malformed(f"expected HTTP method names, not {value!r}"))
    return frozenset(method.strip().upper() for method in methods)


def _numbers_in(low: float, high: float | None) -> Any:
    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Mapping[Any, Any]) -> None:
        for key, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TypeError(f"{key} must be a number, not {number!r}")
            if not math.isfinite(number) or number < low or (high is not None and number > high):
                bound = f"between {low} and {high}" if high is not None else f">= {low}"
                raise ValueError(f"{key} must be {bound}, not {number!r}")

    return validate


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


def _hosts(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
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


def _names(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{name!r} is not a parameter or header name")


@attrs.frozen
class Rate:
    """A short-window rate: never more than ``limit`` requests in any ``per`` seconds,
    at most ``burst`` at once.

    The window slides: *any* span of ``per`` seconds holds at most ``limit``
    requests, so every calendar window (each second, each minute) holds too. After an
    idle spell ``burst`` requests go at once; the next waits until the oldest leaves
    the window. ``burst`` defaults to ``limit``. A smaller one smooths the flow: a
    token bucket of ``burst`` tokens refilling at ``limit / per`` applies as well, so
    ``Rate(30, per=1.0, burst=5)`` sends 5 at once, then one every 1/30 s, and still
    never 31 in a second. Saturated, either form sends ``limit`` per ``per`` (a
    request counts for ``per`` seconds plus one millisecond, the limiter's resolution;
    above 64 requests per window, plus up to ``per / 64``).

    A request that does not fit waits (up to its priority's max wait) rather than
    being refused. All processes and machines sharing the state (its SQLite file, or
    Redis) share the window.

    Args:
        limit: requests in any ``per`` seconds (> 0).
        per: the window (> 0): seconds, or ``"1s"``, ``"1m"``, ``"1h"``, ``"1d"``.
        burst: requests at once, ``1 <= burst <= limit``; None: ``limit``.

    Raises:
        quotaflow.ConfigError: a value is invalid; the message names it.

    .. versionadded:: 0.1
    """

    limit: int = attrs.field(
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.gt(0))
    )
    per: float = attrs.field(
        default=1.0, converter=duration, validator=_checked(attrs.validators.gt(0))
    )
    burst: int | None = attrs.field(
        default=None,
        validator=_checked(
            attrs.validators.optional([attrs.validators.instance_of(int), attrs.validators.gt(0)]),
            _within_limit,
        ),
    )


@attrs.frozen
class Quota:
    """A long-window quota: ``limit`` units per ``period`` (``"day"`` or ``"month"``, UTC).

    ``limit`` is the assumption until the API's own headers say otherwise;
    monthly periods start on ``reset_day`` (the billing day, clamped to the month).

    .. versionadded:: 0.1
    """

    limit: int = attrs.field(
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.gt(0))
    )
    period: Literal["day", "month"] = attrs.field(
        default="month", validator=_checked(attrs.validators.in_(("day", "month")))
    )
    reset_day: int = attrs.field(
        default=1,
        validator=_checked(
            attrs.validators.instance_of(int), attrs.validators.ge(1), attrs.validators.le(31)
        ),
    )


@attrs.frozen
class QuotaReading:
    """What a response says of the quota. Any field may be unknown (``None``).

    Attributes:
        remaining: units left this period.
        used: units used this period (cumulative).
        last: what this very call cost.
        limit: the size of the quota this period, where the API says it.
    """

    remaining: int | None = None
    used: int | None = None
    last: int | None = None
    limit: int | None = None


def _number_header(headers: httpx.Headers, name: str | None) -> float | None:
    """A finite number from header ``name``; bad upstream data reads as unknown (None),
    never as a crash or a wild number."""
    if name is None:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int_header(headers: httpx.Headers, name: str | None) -> int | None:
    value = _number_header(headers, name)
    return int(value) if value is not None and abs(value) <= 2**53 else None


@attrs.frozen
class QuotaHeaders:
    """Reads a :class:`QuotaReading` from response headers named here.

    Values that are missing or not numbers read as unknown.

    .. versionadded:: 0.1
    """

    remaining: str | None = None
    used: str | None = None
    last: str | None = None
    limit: str | None = None

    def __call__(self, response: httpx.Response) -> QuotaReading:
        headers = response.headers
        return QuotaReading(
            remaining=_int_header(headers, self.remaining),
            used=_int_header(headers, self.used),
            last=_int_header(headers, self.last),
            limit=_int_header(headers, self.limit),
        )


@attrs.frozen
class WindowReading:
    """What a response says of the API's short window. Any field may be unknown (``None``).

    When ``remaining`` is 0 (or less) the profile holds off until the window resets,
    in every process on its state: ``reset`` seconds from now if known, else the
    ``per`` of the profile's shortest rate (of those whose ``limit`` is ``limit``,
    if any is).

    Attributes:
        remaining: requests left in the current window.
        reset: when the window starts again: seconds from now, or the moment itself
            in epoch seconds (any value from 10**9 on; a moment already past means
            the window has started again).
        limit: the window's size in requests, where the API says it.

    .. versionadded:: 0.1
    """

    remaining: int | None = None
    reset: float | None = None
    limit: int | None = None


def _seconds_header(headers: httpx.Headers, name: str | None) -> float | None:
    value = _number_header(headers, name)
    return value if value is not None and value >= 0 else None


@attrs.frozen
class WindowHeaders:
    """Reads a :class:`WindowReading` from response headers named here.

    Values that are missing or not numbers (a negative reset included) read as
    unknown; ``reset`` is read as seconds, or epoch seconds (see :class:`WindowReading`).

    Example: ``WindowHeaders(remaining="x-ratelimit-remaining", reset="x-ratelimit-reset")``.

    .. versionadded:: 0.1
    """

    remaining: str | None = None
    reset: str | None = None
    limit: str | None = None

    def __call__(self, response: httpx.Response) -> WindowReading:
        headers = response.headers
        return WindowReading(
            remaining=_int_header(headers, self.remaining),
            reset=_seconds_header(headers, self.reset),
            limit=_int_header(headers, self.limit),
        )


class FreshnessRule(Protocol):
    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        """Seconds the response stays fresh, or None to defer to its HTTP headers."""


def _no_reading(response: httpx.Response) -> QuotaReading:
    return QuotaReading()


def _unit_cost(request: httpx.Request) -> int:
    return 1


def _status_verdict(response: httpx.Response) -> Verdict:
    return "ok"


def _lower(names: Iterable[str]) -> tuple[str, ...]:
    found = _tuple(names)
    if isinstance(found, _Malformed):
        return found
    return tuple(name.lower() if isinstance(name, str) else name for name in found)


@attrs.frozen
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
            has passed its reserve. None (the default): no plan, the reserves alone.
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
    pace: Literal["even"] | None = attrs.field(
        default=None, validator=_checked(attrs.validators.in_((None, "even")))
    )
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


class Registry:
    """Finds the profile for a URL. Strictly private."""

    def __init__(
        self,
        profiles: Iterable[ApiProfile],
        secret_params: Iterable[str] = (),
        secret_headers: Iterable[str] = (),
    ) -> None:
        self.profiles: tuple[ApiProfile, ...] = tuple(profiles)
        # The client's own secret names (make_client), for every profile and host.
        self.extra_params = tuple(secret_params)
        self.extra_headers = tuple(name.lower() for name in secret_headers)
        # Exact host names resolve with one dict lookup on the hot path; a profile
        # naming the port comes before one naming the host alone.
        self._by_host: dict[str, list[tuple[int | None, ApiProfile]]] = {}
        self._wildcards: list[ApiProfile] = []
        for profile in self.profiles:
            for pattern in profile.hosts:
                host, port = split_host(pattern)
                if host.startswith("*."):
                    self._wildcards.append(profile)
                else:
                    self._by_host.setdefault(host, []).append((port, profile))
        for entries in self._by_host.values():
            entries.sort(key=lambda entry: entry[0] is None)  # stable: order kept otherwise
        self.secret_params = frozenset(
            DEFAULT_SECRET_PARAMS
            + self.extra_params
            + tuple(p for prof in self.profiles for p in prof.secret_params)
        )

    def match(self, url: httpx.URL) -> ApiProfile:
        entries = self._by_host.get(url.host)
        if entries:
            port = url_port(url)
            for wanted, profile in entries:
                if (wanted is None or wanted == port) and url.path.startswith(profile.path_prefix):
                    return profile
        for profile in self._wildcards:
            if profile.matches(url):
                return profile
        return DEFAULT_PROFILE


@attrs.frozen
class Plugin:
    """What a plugin publishes under the ``quotaflow.plugins`` entry-point group.

    An entry point may also name a bare :class:`ApiProfile`, a list of them, or a
    zero-argument callable returning any of these.

    Args:
        name: the plugin's name.
        profiles: the API profiles it provides.
        subscribers: callables receiving :mod:`quotaflow.events`.
        start: called once for every client built, with the client's state directory;
            returns more subscribers (e.g. an archive kept in that directory).
        commands: adds the plugin's sub-commands to the ``quotaflow`` command: called
            with its ``argparse`` sub-parsers; each parser it adds names the function
            that runs it with ``set_defaults(handler=function)`` (``function(args)``
            returns the exit status). Only the command line calls it.
        demo: what ``quotaflow demo`` runs, ``demo(state_dir, out, temporary=...)``:
            an offline scenario that keeps its state in ``state_dir`` (new or empty) and
            prints to ``out``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``commands`` and ``demo``.
    """

    name: str = attrs.field(validator=_checked(attrs.validators.instance_of(str)))
    profiles: tuple[ApiProfile, ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_checked(
            attrs.validators.deep_iterable(attrs.validators.instance_of(ApiProfile))
        ),
    )
    subscribers: tuple[Callable[[Any], None], ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_checked(attrs.validators.deep_iterable(attrs.validators.is_callable())),
    )
    start: Callable[[Path], Iterable[Callable[[Any], None]]] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )
    commands: Callable[[Any], None] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )
    demo: Callable[..., None] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )


def _as_plugin(obj: Any, origin: str) -> Plugin:
    if callable(obj) and not isinstance(obj, ApiProfile | Plugin):
        obj = obj()
    if isinstance(obj, Plugin):
        return obj
    if isinstance(obj, ApiProfile):
        return Plugin(name=origin, profiles=(obj,))
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        found = list(obj)
        if all(isinstance(item, ApiProfile) for item in found):
            return Plugin(name=origin, profiles=found)
    raise ConfigError(
        f"{origin}: expected a Plugin, an ApiProfile or a list of them, got {type(obj).__name__}"
    )


# The group's entry points, scanned once per process and import path: reading every
# installed distribution's metadata was most of what building a client cost.
_SCANNED: dict[tuple[str, ...], tuple[EntryPoint, ...]] = {}


def _entry_points() -> tuple[EntryPoint, ...]:
    key = tuple(sys.path)
    found = _SCANNED.get(key)
    if found is None:
        if len(_SCANNED) >= 16:
            _SCANNED.clear()
        found = _SCANNED[key] = tuple(entry_points(group=ENTRY_POINT_GROUP))
    return found


def discover_plugins() -> list[Plugin]:
    """Plugins published under the ``quotaflow.plugins`` entry-point group (found once
    per process and ``sys.path``; the plugins themselves are asked each time)."""
    found: list[Plugin] = []
    for entry_point in _entry_points():
        origin = f"plugin {entry_point.name!r} ({entry_point.value})"
        try:
            obj = entry_point.load()
        except Exception as exc:
            raise ConfigError(f"{origin}: could not be loaded: {exc}") from exc
        found.append(_as_plugin(obj, origin))
    return found


def resolve_plugins(
    profiles: Iterable[ApiProfile] | None, plugins: bool, state_dir: Path | None = None
) -> tuple[Registry, list[Callable[[Any], None]]]:
    """Plugin profiles, then explicit ones (a later profile replaces one of the same
    name), and the plugins' subscribers (started for ``state_dir`` when given)."""
    by_name: dict[str, ApiProfile] = {}
    subscribers: list[Callable[[Any], None]] = []
    for plugin in discover_plugins() if plugins else []:
        subscribers.extend(plugin.subscribers)
        if plugin.start is not None and state_dir is not None:
            try:
                subscribers.extend(plugin.start(state_dir))
            except Exception as exc:
                raise ConfigError(f"plugin {plugin.name!r}: start() failed: {exc}") from exc
        for profile in plugin.profiles:
            by_name[profile.name] = profile
    if profiles is not None:
        if isinstance(profiles, ApiProfile) or not isinstance(profiles, Iterable):
            raise ConfigError("profiles: expected a list of ApiProfile")
        for profile in _as_plugin(list(profiles), "profiles").profiles:
            by_name[profile.name] = profile
    return Registry(by_name.values()), subscribers
