"""The cold tier: answers that never change (or not for a long, stated time), kept
until they are the least recently used past a size bound. Strictly private.

A profile marks such answers (``ApiProfile.immutable``); the caching layer keeps them
here as well as in hishel's storage, and answers from here after the hot tier misses
and before the warm tier is read. Nothing here expires with freshness, ``max_stale``
or the warm tier's retention: an entry leaves when its own stated time is up, or
when the store is over ``cold_bytes`` and it is the least recently used.

It lives beside the rest of the state: one SQLite file, ``cold.db`` in the state
directory (``_state/_sqlite_cold.py``), or Redis (``_state/_redis_cold.py``, keys without
TTL under ``{prefix}:cold:``).

The store never fails a request: an error reading it is a miss, an error writing it
leaves the answer unkept (logged once at WARNING, then at DEBUG).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Collection, Iterable
from typing import Any

import attrs
import hishel
import httpx

from ._cache_status import unstamped
from ._info import Route
from ._retention import stored_headers
from ._snapshots import Snapshot

logger = logging.getLogger("quotaflow")

COLD_FILE = "cold.db"
# The default bound of the cold store (``make_client(cold_bytes=...)``).
COLD_BYTES = 256 * 2**20
# ResponseInfo.tier of its hits.
COLD = "cold"

# Restated on every hit (as the hot tier does), or never replayed from a store.
_DROPPED = frozenset({"age", "content-length", "transfer-encoding", "set-cookie", "set-cookie2"})


@attrs.frozen
class ColdEntry:
    """One kept answer: the body as it came (in its Content-Encoding)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored: float
    expires: float | None  # None: for good

    def response(self, now: float) -> httpx.Response:
        """An unread response over the body, as the hot tier builds its hits."""
        age = max(0, int(now - self.stored))
        headers = [*self.headers, ("content-length", str(len(self.body))), ("age", str(age))]
        return httpx.Response(self.status, headers=headers, stream=httpx.ByteStream(self.body))

    def ttl(self, now: float) -> float | None:
        """Seconds it is kept for yet (None: for good)."""
        return None if self.expires is None else max(0.0, self.expires - now)


@attrs.frozen
class ColdStats:
    """What ``quotaflow status`` shows of the cold store (of one profile's entries)."""

    entries: int
    size: int
    hits: int
    saved: int


STATS_SQL = (
    "SELECT profile, SUM(entries), SUM(size), SUM(hits), SUM(saved) FROM ("
    " SELECT profile, COUNT(*) AS entries, SUM(size) AS size, 0 AS hits, 0 AS saved"
    " FROM entries GROUP BY profile"
    " UNION ALL SELECT profile, 0, 0, hits, saved FROM savings) GROUP BY profile"
)


def read_stats(rows: Iterable[tuple[Any, ...]]) -> dict[str, ColdStats]:
    """:data:`STATS_SQL`'s rows, per profile."""
    return {
        str(profile): ColdStats(int(count or 0), int(size or 0), int(hits or 0), int(saved or 0))
        for profile, count, size, hits, saved in rows
    }


def kept_headers(headers: httpx.Headers, secrets: Collection[str]) -> tuple[tuple[str, str], ...]:
    """The headers as kept: redacted as the warm tier stores them (``_retention``),
    without those a hit restates."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        if name == "cache-status":  # quotaflow's own member describes one answer only
            rest = unstamped(value)
            if rest is None:
                continue
            value = rest
        grouped.setdefault(name.lower(), []).append(value)
    redacted = stored_headers(hishel.Headers(grouped), secrets)
    return tuple(
        (name, value)
        for name in redacted
        if name not in _DROPPED
        for value in redacted.get_list(name) or ()
    )


class ColdStore(abc.ABC):
    """Where answers that never change are kept: SQLite (``_state._sqlite_cold``) or
    Redis (``_state._redis_cold``). No method raises: a failure is a miss, or an answer
    left unkept."""

    max_bytes: int

    @abc.abstractmethod
    def get(self, key: str, now: float, *, touch: bool = True) -> ColdEntry | None:
        """The entry kept under ``key``, or None; a hit becomes the most recently used
        and counts the quota units it saved (unless ``touch`` is False: a plan)."""

    @abc.abstractmethod
    def find(self, series: str, at: float, now: float, *, touch: bool = True) -> ColdEntry | None:
        """The entry whose window in ``series`` covers the moment ``at``, or None."""

    @abc.abstractmethod
    def put(
        self,
        key: str,
        response: httpx.Response,
        body: bytes,
        *,
        now: float,
        keep_for: float,
        cost: int = 0,
        profile: str = "",
        window: tuple[str, float, float] | None = None,
    ) -> bool:
        """Keep ``response`` (``body`` as it came) for ``keep_for`` seconds (``math.inf``:
        for good), evicting the least recently used entries past the bound. Returns
        whether it is kept (not if it alone is over the bound)."""

    @abc.abstractmethod
    def profile_stats(self) -> dict[str, ColdStats]:
        """Per profile: entries, bytes, hits and the units they saved."""

    def holds_none(self, key: str) -> bool:
        """True only if surely nothing is kept under ``key``, known without waiting on
        anything (the event loop may ask); False when unsure (the default: a store that
        cannot tell so cheaply)."""
        return False

    def stats(self) -> ColdStats:
        """Every profile's entries together."""
        found = list(self.profile_stats().values())
        return ColdStats(
            sum(stats.entries for stats in found),
            sum(stats.size for stats in found),
            sum(stats.hits for stats in found),
            sum(stats.saved for stats in found),
        )

    def close(self) -> None:  # noqa: B027 - stores with resources override it
        pass


def series_of(route: Route, snapshot: Snapshot) -> str:
    """A snapshot's series, partitioned by credential as the storage key is (unless
    the profile's answers are the same for every credential)."""
    if route.profile.shared_answers or route.account is None:
        return snapshot.series
    return f"{snapshot.series}\ncredential={route.account}"


def _guarded_snapshot(
    route: Route, request: httpx.Request, response: httpx.Response | None
) -> Snapshot | None:
    rule = route.profile.snapshot
    if rule is None:
        return None
    try:
        found = rule(request, response)
    except Exception:
        logger.warning(
            "profile %s: snapshot() failed, ignoring it", route.profile.name, exc_info=True
        )
        return None
    return found if isinstance(found, Snapshot) else None


def cold_lookup(
    cold: ColdStore, route: Route, request: httpx.Request, now: float, *, touch: bool = True
) -> ColdEntry | None:
    """The cold store's answer to ``request`` (the redacted one): kept under its key,
    else the entry whose snapshot window covers the moment it asks for."""
    entry = cold.get(route.key, now, touch=touch)
    if entry is not None or route.profile.snapshot is None:
        return entry
    asked = _guarded_snapshot(route, request, None)
    if asked is None:
        return None
    return cold.find(series_of(route, asked), asked.start, now, touch=touch)


def nothing_kept(cold: ColdStore, route: Route, request: httpx.Request) -> bool:
    """Whether :func:`cold_lookup` surely finds nothing for ``request`` (the redacted
    one), known without waiting: no moment asked for that a snapshot window could
    cover, and nothing kept under its key."""
    if _guarded_snapshot(route, request, None) is not None:
        return False
    return cold.holds_none(route.key)


def cold_keep(
    cold: ColdStore,
    route: Route,
    request: httpx.Request,
    response: httpx.Response,
    body: bytes,
    keep_for: float,
    now: float,
    cost: int,
) -> bool:
    """Keep an answer the profile judged immutable, with the window it covers."""
    window = None
    covered = _guarded_snapshot(route, request, response)
    if covered is not None and covered.end > covered.start:
        window = (series_of(route, covered), covered.start, covered.end)
    return cold.put(
        route.key,
        response,
        body,
        now=now,
        keep_for=keep_for,
        cost=cost,
        profile=route.profile.name,
        window=window,
    )
