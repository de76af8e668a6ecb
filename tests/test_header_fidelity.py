"""An answer that passes through the cache keeps its header fields as the origin sent
them, as bare httpx shows them: the names' case, the values' bytes (latin-1 ones too)
and the order of repeated fields, on every path (docs/drop-in.md). quotaflow's own
additions (``Age``, ``Cache-Status``) are left out of the comparison."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from .conftest import BASE, Harness, api_profile, info
from .stub_server import REDIS_URL

URL = f"{BASE}/doc"
OURS = {b"age", b"cache-status"}


def sent(version: bytes = b"1", cache_control: bytes = b"max-age=60") -> list[tuple[bytes, bytes]]:
    """Mixed-case names, a latin-1 value beside a UTF-8 one, a repeated field split
    by another, and a Date (so that quotaflow adds none)."""
    return [
        (b"X-Name", "café".encode("latin-1")),
        (b"X-Utf8", "über".encode()),
        (b"Cache-Control", cache_control),
        (b"X-Dup", b"1"),
        (b"ETag", b'"a"'),
        (b"X-Dup", b"2"),
        (b"X-Version", version),
        (b"Date", email.utils.formatdate(time.time(), usegmt=True).encode()),
    ]


def origin(**kwargs: Any) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=sent(**kwargs), content=b"hi")

    return answer


def bare(handler: Callable[[httpx.Request], httpx.Response]) -> list[tuple[bytes, bytes]]:
    """What bare httpx shows of the same answer."""
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return client.get(URL).headers.raw


def theirs(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers.raw if k.lower() not in OURS]


@pytest.mark.parametrize(
    ("path", "settings"),
    [
        ("miss", {}),
        ("hot hit", {}),
        ("warm hit", {"hot_entries": 0}),
        ("redis miss", {"redis_url": REDIS_URL}),
        ("redis hit", {"redis_url": REDIS_URL, "hot_entries": 0}),
        ("redis hot hit", {"redis_url": REDIS_URL}),
    ],
)
def test_fresh_paths_keep_the_pairs(
    stack: Callable[..., Harness],
    router: respx.Router,
    traveller: Any,
    request: pytest.FixtureRequest,
    path: str,
    settings: dict[str, Any],
) -> None:
    """A miss, then hits from memory, SQLite or Redis, sync and async: the pairs as sent."""
    if "redis_url" in settings:
        settings = {**settings, "redis_prefix": request.getfixturevalue("prefix")}
    handler = origin()
    route = router.get(URL).mock(side_effect=handler)
    client = stack(profiles=[], **settings)

    response = client.get(URL)
    if "hit" in path:
        response = client.get(URL)

    assert theirs(response) == bare(handler)
    assert info(response).cache == ("hit" if "hit" in path else "miss")
    assert route.call_count == 1
    assert response.content == b"hi"


def test_a_revalidated_answer_keeps_the_stored_pairs(
    stack: Callable[..., Harness], router: respx.Router, traveller: Any
) -> None:
    """A 304 refreshes the values it carries (RFC 9111 §4.3.4), in their place and with
    the names as first sent; the rest stays as stored."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"a"':
            return httpx.Response(304, headers=[(b"ETag", b'"a"'), (b"x-version", b"2")])
        return httpx.Response(200, headers=sent(cache_control=b"no-cache"), content=b"hi")

    route = router.get(URL).mock(side_effect=handler)
    client = stack(profiles=[])

    client.get(URL)
    response = client.get(URL)

    expected = [(k, b"2" if k == b"X-Version" else v) for k, v in bare(origin())]
    expected = [(k, b"no-cache" if k == b"Cache-Control" else v) for k, v in expected]
    assert theirs(response) == expected
    assert info(response).cache == "revalidated"
    assert route.call_count == 2
    assert response.content == b"hi"


def test_a_stale_answer_keeps_the_stored_pairs(
    stack: Callable[..., Harness], router: respx.Router, traveller: Any
) -> None:
    """The stale fallback serves the stored answer with its pairs as sent."""
    handler = origin()
    route = router.get(URL).mock(side_effect=handler)
    client = stack(profiles=[api_profile()])
    expected = bare(handler)
    client.get(URL)
    traveller.shift(61)
    route.mock(return_value=httpx.Response(503, text="busy"))

    response = client.get(URL)

    assert info(response).cache == "stale"
    assert theirs(response) == expected
    assert response.content == b"hi"


def test_a_miss_keeps_its_cookies_in_place(
    stack: Callable[..., Harness], router: respx.Router, traveller: Any
) -> None:
    """The live answer keeps its Set-Cookie fields where they came (never stored: a hit
    has none, docs/drop-in.md)."""

    def handler(request: httpx.Request) -> httpx.Response:
        pairs = sent()
        pairs[3:3] = [(b"Set-Cookie", b"a=1")]
        pairs.append((b"Set-Cookie", b"b=2"))
        return httpx.Response(200, headers=pairs, content=b"hi")

    router.get(URL).mock(side_effect=handler)
    client = stack(profiles=[])

    response = client.get(URL)

    assert theirs(response) == bare(handler)


def test_the_carried_pairs_store_nothing_hishel_would_not(
    stack: Callable[..., Harness], router: respx.Router, traveller: Any, tmp_path: Any
) -> None:
    """A cookie, or a secret in a URL-valued field, never reaches the disk by way of the
    carried pairs: a hit shows the field as stored (redacted) or not at all."""

    def handler(request: httpx.Request) -> httpx.Response:
        pairs = [
            *sent(),
            (b"Set-Cookie", b"session=cookie-secret"),
            (b"Content-Location", b"https://api.test/doc?key=param-secret"),
        ]
        return httpx.Response(200, headers=pairs, content=b"hi")

    router.get(URL).mock(side_effect=handler)
    client = stack(profiles=[api_profile()], hot_entries=0)  # the hit read from disk

    live = client.get(URL)
    client.client.cookies.clear()  # a Cookie would partition the cache
    hit = client.get(URL)
    client.close()

    assert live.headers["set-cookie"] == "session=cookie-secret"
    assert info(hit).cache == "hit"
    assert "set-cookie" not in hit.headers
    assert "param-secret" not in hit.headers["content-location"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert b"cookie-secret" not in stored
    assert b"param-secret" not in stored
