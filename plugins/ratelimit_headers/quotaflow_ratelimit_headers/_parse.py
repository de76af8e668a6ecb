"""Lenient parsers of rate-limit header values. Pure: no I/O, time passed in.

They read what servers send, which is not always what the specs say, and never
raise: a value (or a list member) they cannot read gives None. Every number they
return is a non-negative ``int``.

Sources:

- IETF draft-ietf-httpapi-ratelimit-headers (07 and later): ``RateLimit-Policy:
  "daily";q=1000;w=86400`` and ``RateLimit: "daily";r=50;t=30``, Lists of RFC 9651
  structured fields (items named by a String or Token; ``q`` quota, ``w`` window
  seconds, ``r`` remaining, ``t`` seconds to reset). Earlier drafts (03 to 06) wrote a
  policy's quota as the item itself (``RateLimit-Policy: 100;w=60``) and
  ``RateLimit: limit=100, remaining=50, reset=30`` as one Dictionary; both are read.
- De facto: ``X-RateLimit-Limit``/``-Remaining`` (a count, sometimes followed by a
  draft-style policy: ``100, 100;w=60``) and ``X-RateLimit-Reset`` given as seconds
  to wait, epoch seconds, epoch milliseconds or an HTTP date.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import attrs

__all__ = ["Limit", "Policy", "parse_count", "parse_policy", "parse_ratelimit", "parse_reset"]

# RFC 9651 integers have at most 15 digits; ASCII digits only (str.isdigit and \d
# would take other scripts' digits too).
_INTEGER = re.compile(r"[0-9]{1,15}")
_DECIMAL = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,12}))?")
_COUNT = re.compile(r"\s*([0-9]{1,15})(?:\.0*)?\s*(?:[,;].*)?", re.DOTALL)
_RESET = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,12})?)\s*(ms|s)?\s*", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")

# Epoch values from here on are read as moments, not as seconds to wait:
# 10**9 seconds is September 2001; 10**12 milliseconds is September 2001 too.
_EPOCH_SECONDS = 10**9
_EPOCH_MILLISECONDS = 10**12


@attrs.frozen
class Policy:
    """One member of ``RateLimit-Policy``: ``quota`` units per ``window`` seconds.

    .. versionadded:: 0.1
    """

    name: str
    quota: int
    window: int | None = None


@attrs.frozen
class Limit:
    """One member of ``RateLimit``: ``remaining`` units, ``reset`` seconds until renewal.

    .. versionadded:: 0.1
    """

    name: str
    remaining: int
    reset: int | None = None


def _split(text: str, separator: str) -> Iterator[str]:
    """Split at ``separator`` outside double quotes (backslash escapes inside)."""
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield text[start:index]
            start = index + 1
    yield text[start:]


def _unquote(text: str) -> str | None:
    """A String (``"daily"``) or a Token (``daily``); None for anything else."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        out, escaped = [], False
        for char in inner:
            if escaped:
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                return None
            else:
                out.append(char)
        return None if escaped else "".join(out)
    return text if _TOKEN.fullmatch(text) else None


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def _seconds(text: str | None) -> int | None:
    """Seconds as an integer or a decimal (rounded up: waiting less would be too early)."""
    if text is None:
        return None
    found = _DECIMAL.fullmatch(text.strip())
    if found is None:
        return None
    whole, fraction = found.groups()
    return int(whole) + (1 if fraction and fraction.strip("0") else 0)


def _members(value: str | None) -> Iterator[tuple[str, dict[str, str | None]]]:
    """(bare item, parameters) of each member of a structured-field List."""
    if not isinstance(value, str):
        return
    for member in _split(value, ","):
        parts = list(_split(member, ";"))
        params: dict[str, str | None] = {}
        for part in parts[1:]:
            key, equals, raw = part.partition("=")
            key = key.strip().lower()
            if key and key not in params:  # the first occurrence wins
                params[key] = raw.strip() if equals else None
        yield parts[0].strip(), params


def parse_policy(value: str | None) -> tuple[Policy, ...] | None:
    """Read ``RateLimit-Policy``: ``"daily";q=1000;w=86400, "burst";q=100;w=60``.

    Also the earlier drafts' ``1000;w=86400`` (the item is the quota; its name is
    then the quota's text). Members without a readable quota are skipped.

    Returns:
        The policies in the order sent, or None if none could be read.

    .. versionadded:: 0.1
    """
    found: list[Policy] = []
    for item, params in _members(value):
        quota = _integer(params.get("q"))
        name = _unquote(item)
        if quota is None and _INTEGER.fullmatch(item):
            quota, name = int(item), item  # draft 03..06: the item is the quota
        if quota is None or name is None:
            continue
        found.append(Policy(name=name, quota=quota, window=_seconds(params.get("w"))))
    return tuple(found) or None


def parse_ratelimit(value: str | None) -> tuple[Limit, ...] | None:
    """Read ``RateLimit``: ``"daily";r=50;t=30, "burst";r=9;t=1``.

    Also the earlier drafts' Dictionary ``limit=100, remaining=50, reset=30``, read
    as one member named ``""``. Members without a readable ``r`` are skipped.

    Returns:
        The limits in the order sent, or None if none could be read.

    .. versionadded:: 0.1
    """
    found: list[Limit] = []
    legacy: dict[str, str] = {}
    for item, params in _members(value):
        key, equals, raw = item.partition("=")
        if equals and key.strip().lower() in ("limit", "remaining", "reset"):
            legacy.setdefault(key.strip().lower(), raw)
            continue
        name = _unquote(item)
        remaining = _integer(params.get("r"))
        if name is None or remaining is None:
            continue
        found.append(Limit(name=name, remaining=remaining, reset=_seconds(params.get("t"))))
    if not found and (remaining := _integer(legacy.get("remaining"))) is not None:
        found.append(Limit(name="", remaining=remaining, reset=_seconds(legacy.get("reset"))))
    return tuple(found) or None


def parse_count(value: str | None) -> int | None:
    """Read a count such as ``X-RateLimit-Remaining: 42`` (or ``100, 100;w=60``).

    Returns:
        The leading non-negative integer, or None.

    .. versionadded:: 0.1
    """
    if not isinstance(value, str):
        return None
    found = _COUNT.fullmatch(value)
    return int(found.group(1)) if found else None


def parse_reset(value: str | None, now: float, *, unit: Literal["s", "ms"] = "s") -> int | None:
    """Read a reset time as the seconds from ``now`` until it comes.

    Accepted: seconds to wait (``30``, ``1.5``); milliseconds to wait with an
    ``ms`` suffix (``1500ms``) or ``unit="ms"``; epoch seconds (from 10**9 on);
    epoch milliseconds (from 10**12 on); an HTTP date (``Wed, 21 Oct 2015 07:28:00
    GMT``) or an ISO 8601 time (UTC unless it says otherwise).

    Args:
        value: the header's value.
        now: the current time in epoch seconds.
        unit: the unit of a bare number of seconds to wait.

    Returns:
        Whole seconds (rounded up, 0 for a moment already past), or None.

    .. versionadded:: 0.1
    """
    if not isinstance(value, str) or not isinstance(now, int | float) or not math.isfinite(now):
        return None
    if (found := _RESET.fullmatch(value)) is not None:
        number, suffix = float(found.group(1)), (found.group(2) or "").lower()
        if suffix == "ms" or (not suffix and unit == "ms" and number < _EPOCH_SECONDS):
            delay = number / 1000
        elif number >= _EPOCH_MILLISECONDS:
            delay = number / 1000 - now
        elif number >= _EPOCH_SECONDS:
            delay = number - now
        else:
            delay = number
        return max(0, math.ceil(delay))
    moment = _moment(value)
    return None if moment is None else max(0, math.ceil(moment - now))


def _moment(value: str) -> float | None:
    """An HTTP date or ISO 8601 time as epoch seconds; None if it is neither."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    for read in (parsedate_to_datetime, datetime.fromisoformat):
        try:
            moment = read(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            stamp = moment.timestamp()
        except Exception:  # each reader fails in its own way (TypeError, IndexError...)
            continue
        if math.isfinite(stamp):
            return stamp
    return None
