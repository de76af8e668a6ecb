"""Freshness the user sets for APIs that say nothing (or say it wrong): a client-wide
``default_ttl`` and URL rules. Strictly private.

Where a stored answer's lifetime comes from, first match wins:

1. a URL rule (``url_rules={"api.example.com/static/*": "1h"}``): the user knows
   better than the origin, so it overrides the answer's own headers; ``"no-store"``
   passes matching requests through, never stored;
2. the profile's freshness rule;
3. the answer's explicit freshness (``Cache-Control: max-age``, ``Expires``);
4. ``default_ttl``, the profile's else the client's: a heuristic freshness (RFC 9111
   §4.2.2 lets a cache assign one) for answers that carry no explicit expiry, unless
   they say ``no-store`` or ``no-cache``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from ._profiles import parse_duration
from .exceptions import ConfigError

#: A URL rule's value that means "never store".
NO_STORE = "no-store"

# Statuses a cache may store without explicit freshness (RFC 9110 §15.1: heuristically
# cacheable).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})


@attrs.frozen
class UrlRule:
    pattern: str
    ttl: float | None  # None: never stored
    _regex: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(fnmatch.translate(self.pattern.lower())))

    def matches(self, where: str) -> bool:
        return self._regex.match(where) is not None


@attrs.frozen
class CacheRules:
    """The client's ``default_ttl`` and ``url_rules``, checked once."""

    default_ttl: float | None = None
    urls: tuple[UrlRule, ...] = ()

    def match(self, url: httpx.URL) -> UrlRule | None:
        """The first URL rule for ``url`` (``host[:port]/path``, lower case), if any."""
        if not self.urls:
            return None
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        where = f"{host}{url.path}".lower()
        return next((rule for rule in self.urls if rule.matches(where)), None)


def cache_rules(default_ttl: Any, url_rules: Any, where: str = "") -> CacheRules:
    """Check ``make_client(default_ttl=..., url_rules=...)`` (or the config file's).

    Raises:
        ConfigError: a value is invalid; the message names it.
    """
    prefix = f"{where}: " if where else ""
    ttl = None
    if default_ttl is not None:
        try:
            ttl = parse_duration(default_ttl)
        except ValueError as exc:
            raise ConfigError(f"{prefix}default_ttl: {exc.args[0]}") from None
    if url_rules is None:
        return CacheRules(ttl)
    if not isinstance(url_rules, Mapping):
        raise ConfigError(
            f"{prefix}url_rules: expected a mapping of URL pattern to a duration or "
            f"'{NO_STORE}', not {url_rules!r}"
        )
    rules = []
    for pattern, value in url_rules.items():
        if not isinstance(pattern, str) or not pattern or "://" in pattern:
            raise ConfigError(
                f"{prefix}url_rules: {pattern!r} is not a pattern such as 'api.example.com/v1/*'"
            )
        if value == NO_STORE:
            rules.append(UrlRule(pattern, None))
            continue
        try:
            rules.append(UrlRule(pattern, parse_duration(value)))
        except ValueError as exc:
            raise ConfigError(
                f"{prefix}url_rules[{pattern!r}]: {exc.args[0]}, or '{NO_STORE}'"
            ) from None
    return CacheRules(ttl, tuple(rules))


def explicit_freshness(headers: httpx.Headers) -> bool:
    """Whether the answer says how long it stays fresh (RFC 9111 §4.2.1), or that it
    must not be reused without asking (then no default applies either)."""
    directives = headers.get("cache-control", "").lower()
    if any(word in directives for word in ("max-age", "s-maxage", "no-store", "no-cache")):
        return True
    return "expires" in headers
