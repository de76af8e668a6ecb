"""Keeping credentials out of cache keys, the disk and logs. Strictly private."""

from __future__ import annotations

import logging
from collections.abc import Collection
from urllib.parse import urlencode

import httpx

REDACTED = "[secret]"


def cache_url(url: httpx.URL, secrets: Collection[str]) -> httpx.URL:
    """``url`` without secret parameters, its query sorted, so equal requests share a key."""
    if not url.query:
        return url
    params = url.params
    if any(name in secrets for name in params):
        kept = [(k, v) for k, v in params.multi_items() if k not in secrets]
    else:
        kept = params.multi_items()
    ordered = sorted(kept)
    if ordered == params.multi_items():
        return url
    # No parameters left: no "?" either, so /x?apiKey=... and /x are one resource.
    return url.copy_with(query=urlencode(ordered).encode("ascii") if ordered else None)


def redact_url(url: httpx.URL, secrets: Collection[str]) -> httpx.URL:
    """``url`` with the values of secret parameters replaced, for logs and messages."""
    params = url.params
    if not any(name in secrets for name in params):
        return url
    redacted = [(k, REDACTED if k in secrets else v) for k, v in params.multi_items()]
    return url.copy_with(params=redacted)


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
    found: list[tuple[str, str]] = []
    if url.query:
        lowered = {name.lower() for name in secrets}
        found = [(f"?{k}", v) for k, v in url.params.multi_items() if k.lower() in lowered]
    if url.userinfo:
        found.append(("@userinfo", url.userinfo.decode("latin-1")))
    return tuple(found)
