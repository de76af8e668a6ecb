"""The in-memory hot tier: cheap hits that never outlive the stored entry."""

from __future__ import annotations

import hishel
import hishel.httpx
import httpx
import pytest
import respx

from quotaflow._hot import HotEntry, HotTier
from quotaflow._state import _hishel
from quotaflow._state._hishel import SqliteCache

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"


def entry(body: bytes, expires: float = 100.0) -> HotEntry:
    return HotEntry(200, [], body, received=0.0, expires=expires, ttl=expires)


def test_lru_bounded_by_entries_and_bytes() -> None:
    """The least recently used entries go first when either bound is passed."""
    hot = HotTier(max_entries=3, max_bytes=40)
    for key in "abc":
        hot.put(key, entry(b"x" * 10))
    assert hot.get("a", 0.0) is not None  # a is now the most recently used
    hot.put("d", entry(b"x" * 10))

    assert hot.get("b", 0.0) is None
    assert [k for k in "acd" if hot.get(k, 0.0)] == ["a", "c", "d"]
    hot.put("e", entry(b"x" * 10))  # 4 x 10 bytes would fit, 4 entries do not
    assert len(hot) == 3
    assert hot.size == 30


def test_oversized_bodies_and_expired_entries_are_not_served() -> None:
    """A body over a quarter of the budget is never kept; expired entries drop out."""
    hot = HotTier(max_entries=10, max_bytes=40)
    hot.put("big", entry(b"x" * 11))
    hot.put("old", entry(b"x", expires=5.0))

    assert hot.get("big", 0.0) is None
    assert hot.get("old", 4.9) is not None
    assert hot.get("old", 5.0) is None
    assert len(hot) == 0


@pytest.fixture
def warm_reads(monkeypatch) -> list[str]:
    """Every key the SQLite cache is asked for: hishel's lookups (sync and async
    storages) and the one-query fresh reads beside them (``SqliteCache.fresh``, and
    ``peek`` on the event loop)."""
    reads: list[str] = []
    sync_get = hishel.SqliteStorage.get_entries
    fresh, peek = SqliteCache.fresh, SqliteCache.peek

    def spy(self, key):  # type: ignore[no-untyped-def]
        reads.append(key)
        return sync_get(self, key)

    def fresh_spy(self, key, *args):  # type: ignore[no-untyped-def]
        reads.append(key)
        return fresh(self, key, *args)

    def peek_spy(self, key, *args):  # type: ignore[no-untyped-def]
        reads.append(key)
        return peek(self, key, *args)

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy)
    monkeypatch.setattr(SqliteCache, "fresh", fresh_spy)
    monkeypatch.setattr(SqliteCache, "peek", peek_spy)
    return reads


def test_hot_hits_skip_the_warm_tier(stack, router: respx.Router, warm_reads) -> None:
    """Once hot, hits do not read the SQLite cache at all."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()
    client.get(URL)
    reads_after_miss = len(warm_reads)

    again = client.get(URL)

    assert len(warm_reads) == reads_after_miss
    assert route.call_count == 1
    assert info(again).cache == "hit"
    assert info(again).ttl == 60
    assert again.json() == {"v": 1}
    assert again.headers["age"] == "0"


def test_hot_entry_expires_with_its_freshness(stack, router, traveller) -> None:
    """Hot until exactly the rule's 60 s, then the stack asks upstream."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()
    client.get(URL)
    traveller.shift(59.9)
    assert info(client.get(URL)).cache == "hit"
    route.respond(200, json={"v": 2})
    traveller.shift(0.1)

    fresh = client.get(URL)

    assert route.call_count == 2
    assert fresh.json() == {"v": 2}
    assert client.get(URL).json() == {"v": 2}  # the hot tier holds the new answer


def test_unsafe_request_drops_the_hot_entry(stack, router) -> None:
    """A POST to the resource invalidates it in every tier."""
    route = router.get(URL).respond(200, json={"v": 1})
    router.post(URL).respond(204)
    client = stack()
    client.get(URL)
    client.request("POST", URL)

    assert info(client.get(URL)).cache == "miss"
    assert route.call_count == 2


def test_request_directives_bypass_the_hot_tier(stack, router) -> None:
    """Cache-Control: no-cache on the request goes to hishel, which revalidates."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()
    client.get(URL)

    forced = client.get(URL, headers={"cache-control": "no-cache"})

    assert info(forced).cache == "miss"
    assert route.call_count == 2


def test_vary_answers_stay_out_of_the_hot_tier(stack, router) -> None:
    """Answers that vary by request header are matched by hishel only."""
    route = router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"lang": request.headers["accept-language"]},
            headers={"vary": "accept-language"},
        )
    )
    client = stack()
    english = client.get(URL, headers={"accept-language": "en"})
    french = client.get(URL, headers={"accept-language": "fr"})
    english_again = client.get(URL, headers={"accept-language": "en"})

    assert (english.json(), french.json(), english_again.json()) == (
        {"lang": "en"},
        {"lang": "fr"},
        {"lang": "en"},
    )
    assert route.call_count == 2


def test_a_new_process_warms_from_the_stored_entry(stack, router) -> None:
    """A restarted client answers from SQLite, then from memory."""
    route = router.get(URL).respond(200, json={"v": 1})
    stack().get(URL)
    restarted = stack()

    first = restarted.get(URL)
    second = restarted.get(URL)

    assert route.call_count == 1
    assert (info(first).cache, info(second).cache) == ("hit", "hit")


def test_hot_tier_can_be_turned_off(stack, router, warm_reads) -> None:
    """hot_entries=0 keeps nothing in memory: every hit reads SQLite."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack(hot_entries=0, profiles=[api_profile()])
    client.get(URL)
    reads_after_miss = len(warm_reads)

    hits = [info(client.get(URL)).cache for _ in range(3)]

    assert hits == ["hit"] * 3
    assert len(warm_reads) == reads_after_miss + 3
    assert route.call_count == 1


def test_compressed_answers_are_kept_encoded_and_served_decoded(stack, router) -> None:
    """A gzip answer kept in memory is served with headers that match its body."""
    import gzip

    body = b'{"v": "' + b"x" * 500 + b'"}'

    class Network(httpx.SyncByteStream, httpx.AsyncByteStream):
        """A body that arrives as from a socket, not yet read (unlike content=)."""

        def __iter__(self):  # type: ignore[no-untyped-def]
            yield gzip.compress(body)

        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield gzip.compress(body)

    router.get("https://example.org/z").mock(
        side_effect=lambda request: httpx.Response(
            200,
            stream=Network(),
            headers={"content-encoding": "gzip", "cache-control": "max-age=60"},
        )
    )
    client = stack()

    first = client.get("https://example.org/z")
    second = client.get("https://example.org/z")

    assert first.content == second.content == body
    assert info(second).cache == "hit"
    # Kept as the origin sent it, as bare httpx shows it: encoded, decoded on read.
    assert second.headers["content-encoding"] == "gzip"
    assert second.headers["content-length"] == str(len(gzip.compress(body)))


# A miss in memory reads the stored entry directly when it is a plain fresh 200
# (what hishel's RFC 9111 lookup would serve), and leaves every other case to hishel.


@pytest.fixture
def rfc_lookups(monkeypatch) -> list[str]:
    """Every request that goes through hishel's RFC 9111 state machine."""
    seen: list[str] = []
    sync_rfc = hishel.httpx.CacheTransport._handle_with_rfc
    async_rfc = hishel.httpx.AsyncCacheTransport._handle_with_rfc

    def spy(self, request, *args):  # type: ignore[no-untyped-def]
        seen.append(str(request.url))
        return sync_rfc(self, request, *args)

    async def aspy(self, request, *args):  # type: ignore[no-untyped-def]
        seen.append(str(request.url))
        return await async_rfc(self, request, *args)

    monkeypatch.setattr(hishel.httpx.CacheTransport, "_handle_with_rfc", spy)
    monkeypatch.setattr(hishel.httpx.AsyncCacheTransport, "_handle_with_rfc", aspy)
    return seen


def test_warm_hits_serve_the_stored_answer_aged(stack, router, traveller, rfc_lookups) -> None:
    """Without the hot tier, a hit is the stored answer with its Age, body and headers,
    read straight from storage (hishel's state machine only ran for the miss)."""
    route = router.get(URL).respond(200, json={"v": 1}, headers={"x-remaining": "90"})
    client = stack(hot_entries=0)
    first = client.get(URL)
    lookups_for_the_miss = len(rfc_lookups)
    traveller.shift(30)

    hit = client.get(URL)

    assert route.call_count == 1
    assert lookups_for_the_miss > 0
    assert len(rfc_lookups) == lookups_for_the_miss
    assert hit.json() == {"v": 1}
    assert hit.headers["age"] == "30"
    assert hit.headers["cache-control"] == "max-age=60"
    assert hit.headers["date"] == first.headers["date"]
    assert hit.headers["x-remaining"] == "90"
    assert (info(hit).cache, info(hit).ttl, info(hit).cost) == ("hit", 60, 0)


def test_warm_read_stops_at_the_entrys_freshness(stack, router, traveller) -> None:
    """At 60 s the stored answer is stale: hishel's rules go upstream for a new one."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack(hot_entries=0)
    client.get(URL)
    traveller.shift(59.9)
    assert info(client.get(URL)).cache == "hit"
    route.respond(200, json={"v": 2})
    traveller.shift(0.1)

    fresh = client.get(URL)

    assert route.call_count == 2
    assert (fresh.json(), info(fresh).cache) == ({"v": 2}, "miss")
    assert client.get(URL).json() == {"v": 2}


def test_compressed_answers_read_from_storage_are_decoded(stack, router) -> None:
    """hishel stores a gzip body as it came; a restarted client serves it decoded."""
    import gzip

    body = b'{"v": "' + b"y" * 500 + b'"}'
    route = router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            stream=httpx.ByteStream(gzip.compress(body)),
            headers={"content-encoding": "gzip"},
        )
    )
    stack().get(URL)
    restarted = stack()

    warm = restarted.get(URL)
    hot = restarted.get(URL)

    assert route.call_count == 1
    assert warm.content == hot.content == body
    assert "content-encoding" not in warm.headers
    assert warm.headers["content-length"] == str(len(body))
    assert (info(warm).cache, info(hot).cache) == ("hit", "hit")


def test_a_failing_storage_read_is_left_to_hishel(stack, router, monkeypatch) -> None:
    """If reading the entry directly fails (its one query, whatever the reason), hishel's
    own lookup still answers."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack(hot_entries=0)
    client.get(URL)
    lookups: list[str] = []
    sync_get = hishel.SqliteStorage.get_entries

    def spy(self, key):  # type: ignore[no-untyped-def]
        lookups.append(key)
        return sync_get(self, key)

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy)
    monkeypatch.setattr(_hishel, "READ_FRESH", "SELECT * FROM no_such_table")

    hit = client.get(URL)

    assert lookups  # hishel looked the entry up itself
    assert (hit.json(), info(hit).cache) == ({"v": 1}, "hit")
    assert route.call_count == 1


@pytest.fixture
def hishel_lookups(monkeypatch) -> list[str]:
    """Every key hishel's own lookup (its state machine's) is asked for."""
    seen: list[str] = []
    sync_get = hishel.SqliteStorage.get_entries

    def spy(self, key):  # type: ignore[no-untyped-def]
        seen.append(key)
        return sync_get(self, key)

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy)
    return seen


def test_warm_reads_follow_revalidation_and_invalidation(
    stack, router, traveller, hishel_lookups
) -> None:
    """With no hot tier, a fresh stored answer is read in one query over what was judged
    of it when stored (hishel's lookup never runs): a 304 that renews it (RFC 9111
    §4.3.4) renews that too, and an unsafe request's invalidation (§4.4) ends it."""
    route = router.get(URL).respond(200, json={"v": 1}, headers={"etag": '"a"'})
    router.post(URL).respond(204)
    client = stack(hot_entries=0)
    client.get(URL)
    traveller.shift(61)  # past the rule's 60 s: hishel revalidates
    route.respond(304, headers={"etag": '"a"'})
    renewed = client.get(URL)
    hishel_lookups.clear()

    warm = client.get(URL)

    assert hishel_lookups == []
    assert route.call_count == 2
    assert (renewed.json(), warm.json()) == ({"v": 1}, {"v": 1})
    assert (info(warm).cache, info(warm).reason) == ("hit", "fresh in storage")
    assert warm.headers["age"] == "0"  # the renewed answer's Date, not the first one's
    client.request("POST", URL)
    route.respond(200, json={"v": 2})
    assert client.get(URL).json() == {"v": 2}
    assert route.call_count == 3


def test_an_empty_stored_body_is_a_warm_hit(stack, router, hishel_lookups) -> None:
    """An answer with no body has no chunk stored: still read in the one query."""
    route = router.get(URL).respond(200, content=b"", headers={"content-length": "0"})
    client = stack(hot_entries=0)
    client.get(URL)
    hishel_lookups.clear()

    hit = client.get(URL)

    assert hishel_lookups == []
    assert (hit.content, info(hit).reason) == (b"", "fresh in storage")
    assert route.call_count == 1
