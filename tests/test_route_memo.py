"""What the router remembers so that a request's URL is parsed once: the same answers
as working everything out again, secrets kept out of storage all the same."""

from __future__ import annotations

import httpx
import pytest

from quotaflow import _httpx_fast
from quotaflow._credentials import Fingerprints
from quotaflow._plugins import Registry
from quotaflow._secrets import cache_url, split_url, url_credentials
from quotaflow._transports._route import Router

from .conftest import BASE, api_profile, files_under, info

NAMES = {"apiKey", "key", "Token"}


@pytest.mark.parametrize(
    ("url", "inner", "credentials"),
    [
        ("https://h/p", "https://h/p", ()),
        ("https://h/p?", "https://h/p?", ()),
        ("https://h/p?a=1&b=2", "https://h/p?a=1&b=2", ()),
        # Sorted by name, then value; a query already in httpx's grouped order is kept.
        ("https://h/p?b=2&a=1", "https://h/p?a=1&b=2", ()),
        ("https://h/p?a=1&b=2&a=0", "https://h/p?a=0&a=1&b=2", ()),
        ("https://h/p?a=1&b=2&a=3", "https://h/p?a=1&b=2&a=3", ()),
        ("https://h/p?APIKEY=s&x=a+b", "https://h/p?x=a+b", (("?APIKEY", "s"),)),
        ("https://h/p?token=t", "https://h/p", (("?token", "t"),)),
        (
            "https://u:pw@h/p?z=1&key=k",
            "https://h/p?z=1",
            (("?key", "k"), ("@userinfo", "u:pw")),
        ),
        ("https://u@h/p?b=&a", "https://h/p?a=&b=", (("@userinfo", "u"),)),
    ],
)
def test_split_url_is_cache_url_and_url_credentials_at_once(
    url: str, inner: str, credentials: tuple[tuple[str, str], ...]
) -> None:
    """One parse gives what the two functions give; an unchanged URL is the same object."""
    given = httpx.URL(url)

    split = split_url(given, NAMES)

    assert str(split.url) == str(cache_url(given, NAMES)) == inner
    assert split.credentials == url_credentials(given, NAMES) == credentials
    assert (split.url is given) == (inner == url)
    assert not split.kept & {name.lower() for name in NAMES}


@pytest.mark.parametrize("key", [_httpx_fast.url_key, _httpx_fast.public_key])
def test_url_routes_are_remembered_per_whole_url(monkeypatch, key) -> None:
    """httpx's parsed components or its public properties: the same routes either way,
    and two URLs that differ in anything (a fragment, userinfo) are told apart."""
    monkeypatch.setattr("quotaflow._transports._route.url_key", key)
    router = Router(Registry([api_profile()]), Fingerprints(b"k" * 32))
    plain = httpx.URL(f"{BASE}/odds?region=us&key=K1")

    first = router.url_route(plain)
    again = router.url_route(httpx.URL(f"{BASE}/odds?region=us&key=K1"))
    other = router.url_route(httpx.URL(f"{BASE}/odds?region=us&key=K2"))
    user = router.url_route(httpx.URL("https://me:pw@api.test/odds?region=us&key=K1"))

    assert again is first
    assert first.resource == other.resource == user.resource == f"{BASE}/odds?region=us"
    assert len({first.key, other.key, user.key}) == 3
    assert router.url_route(httpx.URL(f"{BASE}/odds?region=us&key=K1#top")) is not first


def test_httpx_reads_fall_back_to_public_properties(monkeypatch) -> None:
    """Should httpx keep a URL's components or header names otherwise, the public API
    is chosen, and answers alike."""
    monkeypatch.setattr(_httpx_fast, "_components", lambda url: ("changed",))
    monkeypatch.setattr(_httpx_fast, "_lowered", lambda headers: {b"changed"})
    headers = httpx.Headers({"Cache-Control": "no-cache", "x-Token": "t"})

    assert _httpx_fast._choose_url_key() is _httpx_fast.public_key
    assert _httpx_fast._choose_header_names() is _httpx_fast.public_names
    assert _httpx_fast.public_names(headers) == {b"cache-control", b"x-token"}
    assert _httpx_fast.header_names(headers) == {b"cache-control", b"x-token"}
    assert _httpx_fast.public_key(httpx.URL("https://h/p?q#f")) == (
        "https",
        b"",
        "h",
        None,
        b"/p?q",
        "f",
    )


@pytest.mark.parametrize("add", [_httpx_fast.add_header, _httpx_fast.public_add])
def test_an_added_header_reads_as_one_set_through_httpx(add) -> None:
    """A header added either way reads back like one set through the public API."""
    headers = httpx.Headers({"Content-Type": "text/plain"})
    public = httpx.Headers({"Content-Type": "text/plain"})

    add(headers, b"cache-status", "quotaflow; fwd=miss")
    public["cache-status"] = "quotaflow; fwd=miss"

    assert headers == public
    assert headers.raw == public.raw
    assert headers["Cache-Status"] == "quotaflow; fwd=miss"
    assert _httpx_fast.header_names(headers) == {b"content-type", b"cache-status"}


def test_adding_falls_back_to_the_public_api(monkeypatch) -> None:
    monkeypatch.setattr(_httpx_fast, "_add", lambda headers, name, value: None)

    assert _httpx_fast._choose_add() is _httpx_fast.public_add


def test_storage_redacts_a_parameter_another_profile_calls_secret(stack, router, tmp_path):
    """The router keeps a parameter only another profile names secret (it is no secret
    of this URL's profile), but storage still keeps it out of the files."""
    secret = "S3CR3T-0123456789"
    route = router.get("https://other.test/data").respond(
        200, json={"ok": 1}, headers={"cache-control": "max-age=60"}
    )
    client = stack(profiles=[api_profile(secret_params=("sig_v2",))])

    first = client.get("https://other.test/data", params={"b": "1", "sig_v2": secret})
    second = client.get("https://other.test/data", params={"b": "1", "sig_v2": secret})
    client.close()

    assert route.call_count == 1
    assert info(first).stored
    assert info(second).cache == "hit"
    contents = files_under(tmp_path / "state")
    assert any(b"other.test/data" in content for content in contents.values())
    for path, content in contents.items():
        assert secret.encode() not in content, path


def test_remembered_routes_keep_credentials_apart(stack, router) -> None:
    """Requests for one URL alternating between credentials (and priorities) each reuse
    their own stored answer, never another credential's."""
    route = router.get(f"{BASE}/odds").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"for": request.headers.get("x-token")}, headers={"x-remaining": "90"}
        )
    )
    client = stack()

    answers = [
        client.get(f"{BASE}/odds", headers={"x-token": token}, extensions={"priority": level})
        for token in ("A", "B", "A", "B")
        for level in ("low", "critical")
    ]

    assert route.call_count == 2
    assert [answer.json()["for"] for answer in answers] == list("AABBAABB")
    assert [info(answer).cache for answer in answers] == ["miss", "hit"] * 2 + ["hit"] * 4
    assert [info(answer).priority for answer in answers] == ["low", "critical"] * 4


@pytest.mark.parametrize(
    ("headers", "hot", "hidden"),
    [
        ({}, True, ()),
        ({"Cache-Control": "no-cache"}, False, ()),
        ({"x-token": "T", "Accept": "*/*"}, True, (("x-token", "T"),)),
        # A name the client calls secret is hidden, never read as a cache directive.
        ({"Range": "bytes=0-1", "Pragma": "no-cache"}, False, (("Range", "bytes=0-1"),)),
        ({"Range": "bytes=0-1"}, True, (("Range", "bytes=0-1"),)),
    ],
)
def test_header_scan(headers, hot, hidden) -> None:
    """One look at the header names: may the hot tier answer, which headers to hide."""
    router = Router(Registry([api_profile()], secret_headers=["Range"]), Fingerprints(b"k" * 32))
    request = httpx.Request("GET", f"{BASE}/odds", headers=headers)

    route = router.route(request)

    assert (route.hot, route.secret_headers) == (hot, hidden)
