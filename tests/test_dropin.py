"""quotaflow as a drop-in for any httpx code: credentials partition the cache, GET bodies
stream, and what httpx.Client does (elapsed, raw streams, mounts, transports entered
and exited, conditional requests, retries under an SDK) keeps working."""

from __future__ import annotations

import datetime
import os
import stat
from typing import Any

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Quota, QuotaHeaders

from .conftest import BASE, api_profile, files_under, info
from .stub_server import StreamServer

URL = "https://private.example/me"


def _stream_first(client: Any, url: str, server: StreamServer, **kwargs: Any) -> tuple[bool, bytes]:
    """Open a streamed GET, read the first chunk; tell whether it came before the server
    sent the rest (which it does only once ``release`` is set, or after 10 s: a client
    that buffers gets its first chunk only then). Then read the rest."""

    def sync() -> tuple[bool, bytes]:
        with client.client.stream("GET", url, **kwargs) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            early = not server.rest_sent.is_set()
            server.release.set()
            return early, first + b"".join(chunks)

    async def asynchronous() -> tuple[bool, bytes]:
        async with client.client.stream("GET", url, **kwargs) as response:
            chunks = response.aiter_raw()
            first = await chunks.__anext__()
            early = not server.rest_sent.is_set()
            server.release.set()
            return early, first + b"".join([chunk async for chunk in chunks])

    return sync() if client.mode == "sync" else client._portal.call(asynchronous)


# Credentials partition the cache ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("authorization", "Bearer alice", "Bearer bob"),
        ("cookie", "session=alice", "session=bob"),
        ("x-api-key", "alice", "bob"),
        ("proxy-authorization", "Basic YWxpY2U=", "Basic Ym9i"),
        ("x-rapidapi-key", "alice", "bob"),
        ("ocp-apim-subscription-key", "alice", "bob"),
        ("apikey", "alice", "bob"),
    ],
)
def test_different_credentials_never_share_an_answer(stack, router, name, first, second) -> None:
    """On a host no profile knows, each credential gets its own answer; the same one
    shares it."""
    route = router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"user": request.headers.get(name)},
            headers={"cache-control": "max-age=60"},
        )
    )
    client = stack()

    alice = client.get(URL, headers={name: first})
    bob = client.get(URL, headers={name: second})
    alice_again = client.get(URL, headers={name: first})
    anonymous = client.get(URL)

    assert alice.json() == {"user": first}
    assert bob.json() == {"user": second}
    assert (info(bob).cache, info(alice_again).cache) == ("miss", "hit")
    assert alice_again.json() == {"user": first}
    assert info(anonymous).cache == "miss"
    assert route.call_count == 3


def test_secret_query_parameters_and_userinfo_partition_too(stack, router) -> None:
    """apiKey, access_token (any casing) and user:password@ are credentials."""
    route = router.get(url__startswith="https://data.example/").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"n": len(route.calls)}, headers={"cache-control": "max-age=60"}
        )
    )
    client = stack()

    a = client.get("https://data.example/x", params={"apiKey": "A"})
    b = client.get("https://data.example/x", params={"apiKey": "B"})
    a_again = client.get("https://data.example/x", params={"apiKey": "A"})
    token = client.get("https://data.example/x", params={"access_token": "T"})

    assert [info(r).cache for r in (a, b, a_again, token)] == ["miss", "miss", "hit", "miss"]
    assert a_again.json() == a.json() != b.json()
    assert route.call_count == 3


def test_a_revoked_token_meets_the_origins_401(stack, router) -> None:
    """Another token's stored 200 never answers a token the origin refuses."""

    def origin(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer revoked":
            return httpx.Response(401, json={"error": "revoked"})
        return httpx.Response(
            200, json={"secret": "data"}, headers={"cache-control": "max-age=600"}
        )

    router.get(URL).mock(side_effect=origin)
    client = stack()

    assert client.get(URL, headers={"authorization": "Bearer good"}).status_code == 200
    refused = client.get(URL, headers={"authorization": "Bearer revoked"})

    assert refused.status_code == 401
    assert refused.json() == {"error": "revoked"}


def test_vary_on_a_credential_header_is_honoured(stack, router) -> None:
    """The origin's Vary: Authorization holds even though the header never reaches storage."""
    route = router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"who": request.headers["authorization"]},
            headers={"cache-control": "max-age=60", "vary": "Authorization"},
        )
    )
    client = stack()

    client.get(URL, headers={"authorization": "a"})
    other = client.get(URL, headers={"authorization": "b"})
    same = client.get(URL, headers={"authorization": "a"})

    assert other.json() == {"who": "b"}
    assert same.json() == {"who": "a"}
    assert route.call_count == 2


def test_fingerprints_are_keyed_and_nothing_secret_is_stored(stack, router, tmp_path) -> None:
    """The key file is the owner's alone; no credential byte reaches the state."""
    router.get(URL).respond(200, json={}, headers={"cache-control": "max-age=60"})
    client = stack()
    client.get(
        URL, headers={"authorization": "Bearer sekrit-token"}, params={"api_key": "k3y-v4lue"}
    )
    client.close()

    key_file = tmp_path / "state" / "fingerprint.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_bytes()) == 32
    for path, content in files_under(tmp_path / "state").items():
        assert b"sekrit-token" not in content, path
        assert b"k3y-v4lue" not in content, path


def test_profiles_may_share_answers_across_credentials(stack, router) -> None:
    """``shared_answers=True``: the API answers every key alike; keys share entries, but
    each key is its own quota account."""
    route = router.get(f"{BASE}/odds").respond(
        200, json={"odds": 1}, headers={"x-remaining": "90", "x-used": "10"}
    )
    client = stack(profiles=[api_profile(shared_answers=True, quota=Quota(100))])

    first = client.get(f"{BASE}/odds", params={"key": "one"})
    second = client.get(f"{BASE}/odds", params={"key": "two"})

    assert route.call_count == 1
    assert info(second).cache == "hit"
    assert info(first).remaining == 90


def test_each_credential_is_its_own_quota(stack, router) -> None:
    """Two keys of one API are two quotas: spending one never refuses the other."""
    router.get(url__startswith=f"{BASE}/").respond(200, json={})
    profile = api_profile(
        quota=Quota(10), read_quota=QuotaHeaders(), freshness=lambda *a: 0, max_stale=0
    )
    client = stack(profiles=[profile])

    for n in range(8):  # 8 of 10: NORMAL keeps 20 % back
        client.get(f"{BASE}/{n}", params={"key": "one"})
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/more", params={"key": "one"})
    other = client.get(f"{BASE}/more", params={"key": "two"})

    assert other.status_code == 200
    assert info(other).remaining == 9


# Streaming ----------------------------------------------------------------------------


def test_a_streamed_get_delivers_its_first_bytes_at_once(stack) -> None:
    """Miss: the first chunk reaches the caller before the origin sends the rest; the
    whole body is then stored, and the next request is a hit with the same bytes."""
    with StreamServer() as server:
        client = stack(transport=None)
        early, body = _stream_first(client, f"{server.base}/body?size=5000", server)
        hit = client.get(f"{server.base}/body?size=5000")

    assert early, "the first chunk only came once the whole body had"
    assert len(body) == 5000
    assert hit.content == body
    assert info(hit).cache == "hit"
    assert server.hits["/body"] == 1


def test_server_sent_events_stream_and_are_never_stored(stack) -> None:
    """text/event-stream over GET arrives event by event and passes through unstored."""
    with StreamServer() as server:
        client = stack(transport=None)
        early, body = _stream_first(client, f"{server.base}/events", server)
        again = client.get(f"{server.base}/events")

    assert early
    assert body == b"data: one\n\ndata: two\n\n"
    assert info(again).cache == "miss"
    assert server.hits["/events"] == 2


def test_bodies_over_max_body_stream_unstored(stack, router) -> None:
    """A body past the cap reaches the caller whole and is fetched again next time."""
    big = b"x" * 50_000
    route = router.get(URL).respond(200, content=big, headers={"cache-control": "max-age=60"})
    client = stack(max_body=10_000)

    first = client.get(URL)
    second = client.get(URL)

    assert first.content == second.content == big
    assert route.call_count == 2


def test_a_profile_whose_rules_read_bodies_still_streams_past_max_body(stack) -> None:
    """reads_body=True reads at most max_body; a larger answer streams on unread."""
    with StreamServer() as server:
        profile = api_profile(
            name="local", hosts=("127.0.0.1",), reads_body=True, rates=(), quota=None
        )
        client = stack(transport=None, profiles=[profile], max_body=500)
        early, body = _stream_first(client, f"{server.base}/body?size=3000", server)

    assert early
    assert len(body) == 3000


def test_unread_bodies_raise_response_not_read_and_raw_streams_work(stack, router) -> None:
    """As with bare httpx: a streamed response is unread until read; iter_raw gives the
    bytes as sent (compressed stays compressed); elapsed is set once it is read."""
    import gzip

    raw = gzip.compress(b'{"a": 1}')

    class Network(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield raw

        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield raw

    router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200,
            stream=Network(),
            headers={"content-encoding": "gzip", "cache-control": "max-age=60"},
        )
    )
    client = stack()

    def sync() -> tuple[bool, bytes, httpx.Response]:
        with client.client.stream("GET", URL) as response:
            try:
                _ = response.content
                unread = False
            except httpx.ResponseNotRead:
                unread = True
            return unread, b"".join(response.iter_raw()), response

    async def asynchronous() -> tuple[bool, bytes, httpx.Response]:
        async with client.client.stream("GET", URL) as response:
            try:
                _ = response.content
                unread = False
            except httpx.ResponseNotRead:
                unread = True
            return unread, b"".join([c async for c in response.aiter_raw()]), response

    for expected in ("miss", "hit"):
        unread, body, response = (
            sync() if client.mode == "sync" else client._portal.call(asynchronous)
        )
        assert (unread, body, info(response).cache) == (True, raw, expected)
        assert response.headers["content-encoding"] == "gzip"
        assert response.elapsed >= datetime.timedelta(0)


def test_elapsed_on_every_answer(stack, router, traveller) -> None:
    """response.elapsed works on a miss, a hit and a stale answer, sync and async."""
    route = router.get(URL).respond(200, json={}, headers={"cache-control": "max-age=60"})
    client = stack(profiles=[api_profile(name="p", hosts=("private.example",))])

    answers = [client.get(URL), client.get(URL)]
    traveller.shift(120)
    route.mock(side_effect=httpx.ConnectError("down"))
    answers.append(client.get(URL))

    assert [info(a).cache for a in answers] == ["miss", "hit", "stale"]
    for answer in answers:
        assert isinstance(answer.elapsed, datetime.timedelta)


def test_a_body_failing_mid_stream_is_closed(stack, router) -> None:
    """The network stream is closed when reading it fails, and the error reaches the caller."""
    closed: list[bool] = []

    class Broken(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b"part"
            raise httpx.ReadError("connection reset")

        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"part"
            raise httpx.ReadError("connection reset")

        def close(self) -> None:
            closed.append(True)

        async def aclose(self) -> None:
            closed.append(True)

    router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200, stream=Broken(), headers={"cache-control": "max-age=60"}
        )
    )
    client = stack()

    with pytest.raises(httpx.ReadError):
        client.get(URL)

    assert closed
    # Nothing half-read was stored: the next request goes upstream again.
    with pytest.raises(httpx.ReadError):
        client.get(URL)
    assert len(closed) == 2


# What httpx.Client does ---------------------------------------------------------------


def test_mounts_route_by_pattern_behind_the_stack(stack, router) -> None:
    """mounts= routes as httpx does, and each route is cached like any other."""
    other = respx.Router(assert_all_called=False)
    mounted = other.get(url__startswith="https://mounted.example/").respond(
        200, json={"from": "mount"}, headers={"cache-control": "max-age=60"}
    )
    default = router.get(url__startswith="https://plain.example/").respond(
        200, json={"from": "default"}
    )
    client = stack(mounts={"https://mounted.example": httpx.MockTransport(other.handler)})

    first = client.get("https://mounted.example/a")
    second = client.get("https://mounted.example/a")
    plain = client.get("https://plain.example/b")

    assert first.json() == {"from": "mount"}
    assert info(second).cache == "hit"
    assert plain.json() == {"from": "default"}
    assert (mounted.call_count, default.call_count) == (1, 1)


def test_mounts_are_checked(stack) -> None:
    with pytest.raises(quotaflow.ConfigError, match="mounts"):
        stack(mounts={"https://x": "not a transport"})


def test_with_client_enters_and_exits_the_transport(tmp_path) -> None:
    """``with client:`` enters the transport given (and mounts) and exits them, as httpx does."""
    events: list[str] = []

    class Transport(httpx.BaseTransport):
        def __init__(self, name: str) -> None:
            self.name = name

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        def __enter__(self) -> Transport:
            events.append(f"{self.name}.__enter__")
            return self

        def __exit__(self, *args: object) -> None:
            super().__exit__(*args)
            events.append(f"{self.name}.__exit__")

        def close(self) -> None:
            events.append(f"{self.name}.close")

    client = quotaflow.make_client(
        plugins=False,
        config=False,
        state_dir=tmp_path,
        transport=Transport("transport"),
        mounts={"http://www.example.org": Transport("mounted")},
    )
    with client:
        pass

    assert events == [
        "transport.__enter__",
        "mounted.__enter__",
        "transport.close",
        "transport.__exit__",
        "mounted.close",
        "mounted.__exit__",
    ]


@pytest.mark.anyio
async def test_async_with_client_enters_and_exits_the_transport(tmp_path) -> None:
    events: list[str] = []

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        async def __aenter__(self) -> Transport:
            events.append("enter")
            return self

        async def __aexit__(self, *args: object) -> None:
            events.append("exit")

    client = quotaflow.make_async_client(
        plugins=False, config=False, state_dir=tmp_path, transport=Transport()
    )
    async with client:
        await client.get("https://x.example/")

    assert events == ["enter", "exit"]


def test_a_callers_conditional_request_gets_a_304(stack, router) -> None:
    """From a fresh stored answer whose ETag matches (RFC 9111 §4.3.2); else from the
    origin, passed on as it is."""
    route = router.get(URL).mock(
        side_effect=lambda request: (
            httpx.Response(304, headers={"etag": '"v1"'})
            if request.headers.get("if-none-match") == '"v1"'
            else httpx.Response(
                200, json={"v": 1}, headers={"etag": '"v1"', "cache-control": "max-age=60"}
            )
        )
    )
    client = stack()

    client.get(URL)
    cached = client.get(URL, headers={"if-none-match": '"v1"'})
    weak = client.get(URL, headers={"if-none-match": 'W/"v1"'})
    mismatch = client.get(URL, headers={"if-none-match": '"v0"'})

    assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", '"v1"')
    assert weak.status_code == 304
    assert info(cached).cache == "hit"
    assert mismatch.status_code == 200  # the origin's own answer to the mismatch
    assert route.call_count == 2  # the first fetch and the mismatch: both 304s were ours


def test_a_conditional_request_nothing_stored_for_reaches_the_origin(stack, router) -> None:
    route = router.get(URL).respond(304, headers={"etag": '"v9"'})
    client = stack()

    answer = client.get(URL, headers={"if-none-match": '"v9"'})

    assert answer.status_code == 304
    assert route.call_count == 1


def test_a_conditional_request_with_a_date(stack, router) -> None:
    router.get(URL).respond(
        200,
        json={},
        headers={"last-modified": "Sat, 28 Nov 2026 12:00:00 GMT", "cache-control": "max-age=60"},
    )
    client = stack()
    client.get(URL)

    answer = client.get(URL, headers={"if-modified-since": "Sun, 29 Nov 2026 00:00:00 GMT"})

    assert answer.status_code == 304


@pytest.mark.parametrize("where", ["client", "request"])
def test_retries_can_be_turned_off_under_an_sdk_that_retries(stack, router, where) -> None:
    """An SDK's one attempt at a 503 is one upstream call, not 1 + quotaflow's retries."""
    route = router.get(f"{BASE}/x").respond(503)
    profile = api_profile(retries=2, max_stale=0)
    if where == "client":
        client = stack(profiles=[profile], retries=False)
        answer = client.get(f"{BASE}/x")
    else:
        client = stack(profiles=[profile])
        answer = client.get(f"{BASE}/x", extensions={"retries": 0})

    assert answer.status_code == 503
    assert route.call_count == 1


def test_retries_stay_on_by_default(stack, router, sleeps) -> None:
    route = router.get(f"{BASE}/x").respond(503)
    client = stack(profiles=[api_profile(retries=2, max_stale=0, max_wait={"normal": 30})])

    client.get(f"{BASE}/x")

    assert route.call_count == 3
    assert len(sleeps) == 2


def test_retries_setting_is_checked(stack) -> None:
    with pytest.raises(quotaflow.ConfigError, match="retries"):
        stack(retries=-1)


def test_following_a_redirect_that_carries_the_key_works_every_time(stack, router) -> None:
    """A redirect whose target holds the key is never stored redacted: each time the
    client follows it, the target gets the real key."""
    router.get("https://r.example/a").respond(
        301, headers={"location": "https://r.example/b?apiKey=K", "cache-control": "max-age=600"}
    )
    target = router.get(url__startswith="https://r.example/b").respond(
        200, json={"ok": True}, headers={"cache-control": "max-age=600"}
    )
    client = stack()

    for _ in range(2):
        answer = client.get("https://r.example/a", params={"apiKey": "K"}, follow_redirects=True)
        assert answer.json() == {"ok": True}
        if target.calls:
            assert target.calls.last.request.url.params["apiKey"] == "K"
    assert target.call_count == 1  # the target itself was stored (same credential)


def test_a_decompression_bomb_is_never_inflated_for_the_rules(stack, router, caplog) -> None:
    """A profile whose rules read bodies reads at most max_body *decoded* bytes: a small
    gzip that inflates past it is handed on unread (the rules see its headers), and the
    caller inflates it at its own pace."""
    import gzip

    bomb = gzip.compress(b"\0" * 4_000_000)
    seen: list[bool] = []

    def classify(response: httpx.Response) -> quotaflow.Verdict:
        seen.append(response.is_stream_consumed)
        return "ok"

    class Network(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield bomb

        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield bomb

    router.get(f"{BASE}/bomb").mock(
        side_effect=lambda request: httpx.Response(
            200,
            stream=Network(),
            headers={"content-encoding": "gzip", "cache-control": "max-age=60"},
        )
    )
    client = stack(profiles=[api_profile(classify=classify)], max_body=100_000)

    answer = client.get(f"{BASE}/bomb")

    assert len(bomb) < 100_000
    assert seen == [False]  # the rules were not given 4 MB of zeros
    assert len(answer.content) == 4_000_000


def test_a_clients_own_secret_names_partition_and_are_never_stored(stack, router, tmp_path) -> None:
    """make_client(secret_headers=..., secret_params=...) for credentials no list knows."""
    router.get(url__startswith="https://own.example/").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "who": {"house-AAA": "alice", "house-BBB": "bob"}.get(
                    request.headers.get("x-house-key", ""), "nobody"
                ),
                "q": request.url.params.get("sesame") == "open-CCC",
            },
            headers={"cache-control": "max-age=60"},
        )
    )
    client = stack(secret_headers=["X-House-Key"], secret_params=["sesame"])

    a = client.get("https://own.example/me", headers={"x-house-key": "house-AAA"})
    b = client.get("https://own.example/me", headers={"x-house-key": "house-BBB"})
    c = client.get("https://own.example/q", params={"sesame": "open-CCC"})
    client.close()

    assert (a.json()["who"], b.json()["who"]) == ("alice", "bob")
    assert c.json()["q"] is True
    for path, content in files_under(tmp_path / "state").items():
        for secret in (b"house-AAA", b"house-BBB", b"open-CCC"):
            assert secret not in content, path


def test_a_session_cookie_is_no_quota_account(stack, router) -> None:
    """Cookies partition the cache but not the quota: a load balancer's cookie changing
    on every answer never lets a client past its quota."""
    counter = iter(range(100))
    router.get(url__startswith=f"{BASE}/").mock(
        side_effect=lambda request: httpx.Response(
            200, json={}, headers={"set-cookie": f"lb=node{next(counter)}; Path=/"}
        )
    )
    profile = api_profile(
        quota=Quota(3, period="day"), freshness=lambda *a: 0, max_stale=0, reserves={"normal": 0}
    )
    client = stack(profiles=[profile])

    for n in range(3):
        client.get(f"{BASE}/{n}")
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/more")


def test_a_redirect_that_sets_a_cookie_is_never_replayed_without_it(stack, router) -> None:
    """A login step (302 + Set-Cookie) is never stored: the target always sees the cookie."""
    router.get("https://login.example/start").respond(
        302,
        headers={
            "location": "https://login.example/home",
            "set-cookie": "session=s1; Path=/",
            "cache-control": "max-age=600",
        },
    )
    home = router.get("https://login.example/home").mock(
        side_effect=lambda request: httpx.Response(
            200 if "session=s1" in request.headers.get("cookie", "") else 403
        )
    )
    for _ in range(2):
        client = stack()  # a new client: an empty cookie jar, the same state
        answer = client.get("https://login.example/start", follow_redirects=True)
        assert answer.status_code == 200
    assert home.call_count == 2
