"""Keeping credentials out of cache keys, the disk and logs. Strictly private."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

import httpx

REDACTED = "[secret]"


def _secret_names(secrets: Collection[str]) -> frozenset[str]:
    """Parameter names compare without case: ``APIKEY`` and ``Api_Key`` are keys too."""
    return frozenset(name.lower() for name in secrets)


class Split(NamedTuple):
    """A URL as the router needs it, from one parse of its query (:func:`split_url`)."""

    url: httpx.URL  # as :func:`cache_url` gives it
    credentials: tuple[tuple[str, str], ...]  # as :func:`url_credentials` gives them
    kept: frozenset[str]  # the names of the parameters left in ``url``, lower case


def split_url(url: httpx.URL, secrets: Collection[str]) -> Split:
    """:func:`cache_url` and :func:`url_credentials` of ``url`` at once: its query is
    parsed once, and the URL rebuilt at most once (a new URL is parsed again by httpx,
    which costs more than the rest of a cache hit)."""
    names = _secret_names(secrets)
    credentials: list[tuple[str, str]] = []
    kept_names: set[str] = set()
    changes: dict[str, bytes | None] = {}
    query = url.query
    if query:
        # Grouped by name in order of first appearance, as ``httpx.QueryParams`` keeps
        # them (``multi_items()``): a query already in that order and sorted is kept as
        # it was written, as before.
        grouped: dict[str, list[str]] = {}
        for name, value in parse_qsl(query.decode("ascii"), keep_blank_values=True):
            grouped.setdefault(name, []).append(value)
        items = [(name, value) for name, values in grouped.items() for value in values]
        kept = []
        for name, value in items:
            lowered = name.lower()
            if lowered in names:
                credentials.append((f"?{name}", value))
            else:
                kept.append((name, value))
                kept_names.add(lowered)
        ordered = sorted(kept)
        if ordered != items:
            # No parameters left: no "?" either, so /x?apiKey=... and /x are one resource.
            changes["query"] = urlencode(ordered).encode("ascii") if ordered else None
    userinfo = url.userinfo
    if userinfo:
        credentials.append(("@userinfo", userinfo.decode("latin-1")))
        changes["userinfo"] = b""
    inner = url.copy_with(**changes) if changes else url
    return Split(inner, tuple(credentials), frozenset(kept_names))


def cache_url(url: httpx.URL, secrets: Collection[str]) -> httpx.URL:
    """``url`` without userinfo or secret parameters (any casing of their names), its
    query sorted, so equal requests share a key and no credential reaches storage."""
    return split_url(url, secrets).url


def redact_url(url: httpx.URL, secrets: Collection[str]) -> httpx.URL:
    """``url`` without userinfo, the values of secret parameters replaced, for logs,
    messages and the URL-valued headers of stored answers."""
    if url.userinfo:
        url = url.copy_with(userinfo=b"")
    names = _secret_names(secrets)
    params = url.params
    if not any(name.lower() in names for name in params):
        return url
    redacted = [(k, REDACTED if k.lower() in names else v) for k, v in params.multi_items()]
    return url.copy_with(params=redacted)


# A URL in a header: a whole absolute value (Location, Content-Location) or each
# <URI-reference> of a Link (RFC 8288 §3).
_LINK_TARGET = re.compile(r"<([^>]*)>")


def redact_header_url(value: str, secrets: Collection[str]) -> str:
    """A URL-valued header with credentials replaced (:func:`redact_url`); a value that
    does not parse as a URL is kept only if it cannot carry one."""
    try:
        return str(redact_url(httpx.URL(value.strip()), secrets))
    except (httpx.InvalidURL, TypeError, ValueError):
        return REDACTED


def redact_links(value: str, secrets: Collection[str]) -> str:
    """A ``Link`` header with each target redacted."""
    return _LINK_TARGET.sub(lambda m: f"<{redact_header_url(m.group(1), secrets)}>", value)


class RedactingFilter(logging.Filter):
    """Rewrites URLs in log records (httpx logs every request line, query included)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, httpx.URL) for arg in args):
            record.args = tuple(
                redact_url(arg, self.secrets) if isinstance(arg, httpx.URL) else arg for arg in args
            )
        return True


_filter = RedactingFilter()


def redact_logs(secrets: Collection[str]) -> None:
    """Make sure httpx's loggers never print these parameters' values."""
    _filter.secrets.update(secrets)
    for name in ("httpx", "quotaflow"):
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


def url_credentials(url: httpx.URL, secrets: Collection[str]) -> tuple[tuple[str, str], ...]:
    """The credentials ``url`` carries: its secret parameters (names in any casing) and
    its userinfo, as ``(name, value)`` pairs for a fingerprint (see ``_credentials``)."""
    return split_url(url, secrets).credentials
