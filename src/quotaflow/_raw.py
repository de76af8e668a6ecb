"""An answer's header fields as the origin sent them, carried through hishel. Strictly
private.

hishel keeps headers as a dict of lower-cased names to lists of text values, so what it
hands back has lost the names' case, the order of repeated fields and any byte that was
not UTF-8. So that the caller sees what bare httpx would, the pairs as sent ride along
in one field of hishel's own headers, ``qf-raw-pairs`` (ASCII JSON of latin-1 text,
byte-transparent), added to each answer hishel receives whose pairs it would alter
(:class:`Carrying`; lower-case names and ASCII values need none), stored with
it, and turned back into the answer's pairs wherever one is handed back (:func:`pairs_of`,
:func:`restore`). hishel's own values win where they differ (a 304 refreshed them, RFC
9111 §4.3.4; a stored copy was redacted): the pair keeps its place and name, with the
value hishel holds. Fields hishel dropped stay dropped; fields it added are appended.
Only values hishel stores are carried to storage (:func:`stored_raw`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import cast

import hishel
import httpx

__all__ = ["RAW", "Carrying", "carried", "pairs_of", "restore", "stored_raw"]

RAW = "qf-raw-pairs"
_RAW = RAW.encode()

Pairs = list[tuple[bytes, bytes]]


def carried(raw: Iterable[tuple[bytes, bytes]]) -> str:
    """The field's value for these pairs."""
    return json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in raw])


def _parse(value: str) -> Pairs | None:
    try:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(value)]
    except (ValueError, TypeError, UnicodeEncodeError):
        return None  # not ours after all: hishel's values alone


def _grouped(pairs: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower(), []).append(value)
    return grouped


def _as_hishel(raw: Pairs) -> dict[bytes, list[bytes]]:
    """The values as hishel got them: decoded as httpx decodes them (one guess for all
    the fields), handed back as UTF-8."""
    return _grouped((k.encode(), v.encode()) for k, v in httpx.Headers(raw).multi_items())


def _merged(current: Pairs, raw: Pairs) -> Pairs:
    """``raw`` where hishel's values (``current``: lower-case names, UTF-8) still agree.
    ASCII values compare as they are; others as hishel decoded them."""
    now = _grouped(current)
    sent = _grouped(raw)
    decoded: dict[bytes, list[bytes]] | None = None
    out: Pairs = []
    changed: set[bytes] = set()
    for name, value in raw:
        low = name.lower()
        values = now.get(low)
        if values is None:
            continue  # hishel dropped it
        same = values == sent[low]
        if not same and not all(v.isascii() for v in sent[low]):
            decoded = _as_hishel(raw) if decoded is None else decoded
            same = values == decoded.get(low)
        if same:
            out.append((name, value))
        elif low not in changed:  # refreshed (or redacted): hishel's, in its place
            changed.add(low)
            out.extend((name, v) for v in values)
    out.extend((k, v) for k, v in current if k not in sent)
    return out


def pairs_of(headers: hishel.Headers) -> Pairs:
    """The pairs of a stored answer's headers (hishel's), as sent."""
    values_of = headers.get_list
    found = values_of(RAW)
    if not found:  # hishel's form is theirs
        return [(k.encode(), v.encode()) for k in headers for v in values_of(k) or ()]
    current = [(k.encode(), v.encode()) for k in headers if k != RAW for v in values_of(k) or ()]
    raw = _parse(found[0])
    return current if raw is None else _merged(current, raw)


def restore(response: httpx.Response) -> None:
    """An answer hishel handed back, with its pairs as sent (if it carries them)."""
    pairs = response.headers.raw
    found = next((v for k, v in pairs if k == _RAW), None)
    if found is None:
        return
    current = [(k, v) for k, v in pairs if k != _RAW]
    raw = _parse(found.decode())
    response.headers = httpx.Headers(current if raw is None else _merged(current, raw))


def stored_raw(headers: dict[str, list[str]], keep: Callable[[str, list[str]], list[str]]) -> None:
    """The carried pairs as they may be stored: a field whose values the storage rules
    (``keep``) change or drop is not carried (hishel's stored values stand)."""
    values = headers.get(RAW)
    raw = _parse(values[0]) if values else None
    if raw is None:
        return
    sent = {k.decode(): [v.decode() for v in vs] for k, vs in _as_hishel(raw).items()}
    dropped = {name for name, group in sent.items() if keep(name, group) != group}
    if dropped:
        kept = [(k, v) for k, v in raw if k.decode("latin-1").lower() not in dropped]
        headers[RAW] = [carried(kept)]


class Carrying(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Under hishel: each answer it receives carries its pairs as sent. A 304's do not:
    its fields refresh the stored ones, whose pairs stay as stored. ``next_transport``
    is sync or async, as hishel's transport over it."""

    def __init__(self, next_transport: httpx.BaseTransport | httpx.AsyncBaseTransport) -> None:
        self.next_transport = next_transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _carry(cast(httpx.BaseTransport, self.next_transport).handle_request(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        below = cast(httpx.AsyncBaseTransport, self.next_transport)
        return _carry(await below.handle_async_request(request))

    def close(self) -> None:
        cast(httpx.BaseTransport, self.next_transport).close()

    async def aclose(self) -> None:
        await cast(httpx.AsyncBaseTransport, self.next_transport).aclose()


def _carry(response: httpx.Response) -> httpx.Response:
    if response.status_code != 304:
        raw = response.headers.raw
        if not _as_hishel_keeps(raw):
            response.headers[RAW] = carried(raw)
    return response


def _as_hishel_keeps(raw: Pairs) -> bool:
    """Whether hishel's form of these pairs is the pairs themselves (nothing to carry):
    lower-case names (HTTP/2's are), ASCII values, each name's fields side by side."""
    names = [k for k, _ in raw]
    if not b"".join(names).islower() or not b"".join([v for _, v in raw]).isascii():
        return False
    if len(set(names)) == len(names):
        return True
    seen: set[bytes] = set()
    last = None
    for name in names:
        if name != last:
            if name in seen:
                return False  # grouped, it would move
            seen.add(name)
            last = name
    return True
