"""RFC 9211 ``Cache-Status``: the member quotaflow adds to every answer. Strictly private.

The field is a Structured Fields list (RFC 8941 §3.1), one member per cache that
handled the request: the cache's name (a token) with parameters. RFC 9211 §2: "The
first member of the list represents the cache closest to the origin server, and the
last member of the list represents the cache closest to the user". quotaflow runs in
the client, closest to the user, so its member comes last, after any the field already
holds (RFC 9211 §2: caches "SHOULD preserve the existing field value").

The member describes this answer only, so it is never stored: hishel stores an answer
before the fallback layer stamps it, and the hot tier and the cold store, which keep an
answer once it has been read, drop it (:func:`unstamped`).

Parameters used (RFC 9211 §2.1-2.8): ``hit``; ``fwd`` (``uri-miss``: nothing stored
for the URI; ``miss``: nothing usable, or not known which; ``stale``: a stored answer
was revalidated or stood in for a failed one; ``method``; ``bypass``: the cache is off
for it); ``fwd-status``, the status the next hop answered; ``ttl``, the remaining
freshness in whole seconds (below 0: stale); ``stored``; ``collapsed``; and ``detail``,
why a stale answer was served (``ResponseInfo.stale_reason``).
"""

from __future__ import annotations

import math

import httpx

from ._info import CacheStatus, Call, ResponseInfo

__all__ = ["NAME", "forwarded", "hit_member", "stamp", "unstamped", "unstamped_pairs"]

NAME = "quotaflow"
HEADER = "cache-status"
_PREFIX = f"{NAME};"
# Stale answers served although the request never left: refused before it was sent, so
# the stored answer satisfied it without going forward (a hit, RFC 9211 §2.1).
_NOT_FORWARDED = frozenset({"quota", "rate_limit", "circuit_open"})
# Hits by remaining freshness: the member of a hot hit is built once per second left.
_HITS: dict[int, str] = {}


# RFC 8941 §3.3.1: an sf-integer has at most 15 digits.
_SF_INTEGER = 999_999_999_999_999


def _age(response: httpx.Response) -> float:
    value = response.headers.get("age")
    ok = value is not None and value.isascii() and value.isdigit()
    return float(value) if ok and value is not None else 0.0


def _seconds(value: float) -> int | None:
    """Whole seconds as an sf-integer (None: no number, as from hostile headers)."""
    if not math.isfinite(value):
        return None
    return max(-_SF_INTEGER, min(_SF_INTEGER, math.floor(value)))


def _ttl(info: ResponseInfo, response: httpx.Response) -> int | None:
    """The remaining freshness: ``info.ttl`` is the lifetime (the cold store's: what is
    left of it already, None for good); stale answers carry their own age."""
    if info.cache is CacheStatus.STALE:
        return _seconds((info.ttl or 0.0) - (info.age or 0.0))
    if info.ttl is None:
        return None
    if info.tier == "cold":
        return _seconds(info.ttl)
    return _seconds(info.ttl - _age(response))


def hit_member(ttl: float) -> str:
    """The member of a hit with ``ttl`` seconds of freshness left (the hot tier's)."""
    return _hit(_seconds(ttl))


def _hit(ttl: int | None) -> str:
    if ttl is None:
        return f"{NAME}; hit"
    found = _HITS.get(ttl)
    if found is None:
        if len(_HITS) >= 4096:
            _HITS.clear()
        found = _HITS[ttl] = f"{NAME}; hit; ttl={ttl}"
    return found


def member(info: ResponseInfo, call: Call, response: httpx.Response, fwd_status: int | None) -> str:
    """quotaflow's list member for ``response``, described by ``info``."""
    ttl = _ttl(info, response)
    cache = info.cache
    if cache is CacheStatus.HIT and not call.collapsed:
        return _hit(ttl)
    if cache is CacheStatus.STALE and info.stale_reason in _NOT_FORWARDED:
        return f"{_hit(ttl)}; detail={info.stale_reason}"
    if cache is CacheStatus.STALE or cache is CacheStatus.REVALIDATED:
        forward = "stale"
    else:
        forward = call.forward or "miss"
    parts = [NAME, f"fwd={forward}"]
    if fwd_status is not None:
        parts.append(f"fwd-status={fwd_status}")
    # A forwarded answer's freshness means something only if it is kept (or stale).
    if ttl is not None and (info.stored or cache is CacheStatus.STALE):
        parts.append(f"ttl={ttl}")
    if info.stored and cache is not CacheStatus.STALE:
        parts.append("stored")
    if call.collapsed:
        parts.append("collapsed")
    if cache is CacheStatus.STALE and info.stale_reason:
        parts.append(f"detail={info.stale_reason}")
    return "; ".join(parts)


def stamp(
    response: httpx.Response, info: ResponseInfo, call: Call, fwd_status: int | None = None
) -> httpx.Response:
    """Append quotaflow's member to the answer's ``Cache-Status`` (RFC 9211 §2); a hit
    built by the hot tier carries it already (built once per second of age)."""
    stamped, collapsed = call.stamped, call.collapsed
    if stamped and not collapsed:
        return response
    ours = member(info, call, response, fwd_status)
    headers = response.headers
    prior = headers.get(HEADER)
    if prior and stamped:  # a follower's answer, read as a hit: it was collapsed
        prior = unstamped(prior)
    headers[HEADER] = ours if not prior else f"{prior}, {ours}"
    return response


def unstamped(value: str) -> str | None:
    """A ``Cache-Status`` value without quotaflow's member (None: nothing left)."""
    if value.startswith(_PREFIX) or value == NAME:
        return None
    head, sep, last = value.rpartition(",")
    if sep and (last.strip().startswith(_PREFIX) or last.strip() == NAME):
        return head.rstrip()
    return value


def forwarded(call: Call, response: httpx.Response) -> int | None:
    """The status the next hop answered (``fwd-status``), if the request went there:
    a revalidated answer is the origin's 304."""
    if call.cache is CacheStatus.REVALIDATED:
        return 304
    return response.status_code if call.upstream else None


def unstamped_pairs(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Raw header pairs without quotaflow's member of ``Cache-Status`` (in place)."""
    for i, (name, value) in enumerate(pairs):
        if name.lower() == b"cache-status":
            rest = unstamped(value.decode("latin-1"))
            if rest is None:
                del pairs[i]
            else:
                pairs[i] = (name, rest.encode("latin-1"))
            break  # ``stamp`` leaves the field on one line
    return pairs
