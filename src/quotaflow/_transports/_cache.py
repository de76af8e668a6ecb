"""What both caching twins share (``_async_cache.py`` and its generated sync twin,
``_sync_cache.py``). Strictly private."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable

import hishel
import httpx

from .._hot import HotEntry, HotTier, fresh_stored, stored_entry
from .._info import Call

logger = logging.getLogger("quotaflow")

# A client-side cache is private (RFC 9111 §3.5): responses to authorised
# requests may be stored, since credentials never reach it anyway.
OPTIONS = hishel.CacheOptions(shared=False)


def waited_too_long(request: httpx.Request) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(
        "timed out waiting for a concurrent request for the same resource", request=request
    )


def worth_keeping(response: httpx.Response, hot: HotTier) -> bool:
    caching = response.extensions.get("caching")
    if not isinstance(caching, dict) or not (caching.get("stored") or caching.get("from_cache")):
        return False
    length = response.headers.get("content-length")
    return response.status_code == 200 and (
        length is None or (length.isdigit() and int(length) <= hot.max_bytes // 4)
    )


def read_fresh(storage: hishel.BaseStorage, call: Call, now: float) -> HotEntry | None:
    """A fresh answer read from storage without hishel's state machine: what hishel
    serves a plain GET (RFC 9111 §4) when one fresh 200 is stored, at a fraction
    of the cost. Anything else, errors included, is left to hishel."""
    try:
        entries = storage.get_entries(call.key)
        lifetime = fresh_stored(entries, call.resource, now)
        if lifetime is None:
            return None
        stream = entries[0].response.stream
        assert isinstance(stream, Iterable)
        return stored_entry(entries[0], b"".join(stream), lifetime)
    except Exception:
        logger.debug("quotaflow: reading %s from storage failed", call.key, exc_info=True)
        return None


async def read_fresh_async(
    storage: hishel.AsyncBaseStorage, call: Call, now: float
) -> HotEntry | None:
    """:func:`read_fresh` on an async storage."""
    try:
        entries = await storage.get_entries(call.key)
        lifetime = fresh_stored(entries, call.resource, now)
        if lifetime is None:
            return None
        stream = entries[0].response.stream
        assert isinstance(stream, AsyncIterable)
        body = b"".join([chunk async for chunk in stream])
        return stored_entry(entries[0], body, lifetime)
    except Exception:
        logger.debug("quotaflow: reading %s from storage failed", call.key, exc_info=True)
        return None
