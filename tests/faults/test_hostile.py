"""Hostile answers (issue 13): a stored answer keeps no secret, absurd header values cost
their own request at most, one poisoned quota reading spoils no later request, state
files are private, and a frozen Redis does not hang a request."""

from __future__ import annotations

import errno
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import quotaflow
from quotaflow import _policy

from ..conftest import BASE, api_profile, files_under, info
from ..stub_server import REDIS_URL

KEY = "KEY-4f0c9e1d2b3a"
PASSWORD = "PW-77d1e0c5b9a8"
COOKIE = "SESSION-0a9b8c7d6e5f"
SECRETS = (KEY, PASSWORD, COOKIE)
OTHER = "https://other.test"


def assert_no_secret(blob: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret} found in {where}"


def leaky_answers(router) -> tuple:
    """A cacheable redirect whose URL-valued headers carry the key (in other casings) and
    a password, with a session cookie; a 200 with a cookie for a URL with userinfo."""
    redirect = router.get(f"{BASE}/moved").respond(
        301,
        headers={
            "location": f"{BASE}/target?APIKEY={KEY}&sport=nfl",
            "content-location": f"https://user:{PASSWORD}@api.test/moved?Api_Key={KEY}",
            "link": f'<{BASE}/next?apikey={KEY}>; rel="next", <{BASE}/prev>; rel="prev"',
            "set-cookie": f"sid={COOKIE}; Path=/",
            "cache-control": "max-age=600",
        },
    )
    # respx's url patterns do not match URLs with userinfo: host and path do.
    private = router.get(host="api.test", path="/private").respond(
        200, json={"v": 1}, headers={"set-cookie": f"token={COOKIE}; Path=/private"}
    )
    return redirect, private


def exercise(client, redirect, private) -> None:
    """Each answer twice: stored, then served from the cache; the live ones intact."""
    for live in (True, False):
        moved = client.get(f"{BASE}/moved")
        assert moved.status_code == 301
        # A redirect whose target carries a secret is never stored: a hit would have to
        # send the client to the target with the secret blanked out.
        assert KEY in moved.headers["location"]
        assert "sport=nfl" in moved.headers["location"]
        answer = client.get(f"https://user:{PASSWORD}@api.test/private")
        assert answer.json() == {"v": 1}
        if live:
            # The live answers gave the cookies to the client's jar. A Cookie is a
            # credential (it partitions the cache): without it, the same partition.
            assert {cookie.value for cookie in client.client.cookies.jar} == {COOKIE}
            client.client.cookies.clear()
    assert (redirect.call_count, private.call_count) == (2, 1)  # only the 200 was stored
    client.close()


def test_stored_answers_keep_no_secret_on_disk(stack, router, tmp_path) -> None:
    """Location, Content-Location and Link are redacted, Set-Cookie is never stored, a
    password in the request URL never reaches the stored request: cache.db and state.db
    scanned byte for byte."""
    client = stack()

    exercise(client, *leaky_answers(router))

    files = files_under(tmp_path / "state")
    assert any(path.name == "cache.db" for path in files)
    for path, content in files.items():
        assert_no_secret(content, str(path))


def test_stored_answers_keep_no_secret_in_redis(stack, router, raw, prefix) -> None:
    """The same with the Redis backend: every key and value under the prefix."""
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix)

    exercise(client, *leaky_answers(router))

    keys = list(raw.scan_iter(match=f"{prefix}*"))
    assert any(b":cache" in key for key in keys)
    for key in keys:
        assert_no_secret(key, "a Redis key")
        assert_no_secret(raw.dump(key) or b"", f"the Redis value of {key!r}")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        (f"{BASE}/x?APIKEY={KEY}", KEY),
        (f"{BASE}/x?Api_Key={KEY}", KEY),
        (f"https://user:{PASSWORD}@api.test/x", PASSWORD),
    ],
)
def test_cache_urls_drop_userinfo_and_any_casing_of_key_names(url: str, secret: str) -> None:
    """The cache key and what hishel stores: no userinfo, key names matched without case."""
    from quotaflow._secrets import cache_url, redact_url

    names = ("apiKey", "api_key")
    assert secret not in str(cache_url(httpx.URL(url), names))
    assert secret not in str(redact_url(httpx.URL(url), names))


ABSURD = ["9" * 5000, "1" + "0" * 400]


@pytest.mark.parametrize("max_age", ABSURD, ids=["5000-digits", "1e400"])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_absurd_max_age_is_clamped_not_raised(
    stack, router, traveller, prefix, max_age: str, backend: str
) -> None:
    """max-age with 5,000 digits or 10**400: the answer is delivered, stored and reused,
    fresh for at most MAX_FRESHNESS (a year), on profiled and unprofiled hosts."""
    settings = {"redis_url": REDIS_URL, "redis_prefix": prefix} if backend == "redis" else {}
    client = stack(profiles=[api_profile(freshness=None)], **settings)
    routes = [
        router.get(url).respond(200, json={"v": 1}, headers={"cache-control": f"max-age={max_age}"})
        for url in (f"{BASE}/absurd", f"{OTHER}/absurd")
    ]

    for url in (f"{BASE}/absurd", f"{OTHER}/absurd"):
        first = client.get(url)
        again = client.get(url)
        assert (first.json(), again.json()) == ({"v": 1}, {"v": 1})
        assert info(again).cache == "hit"
        assert info(again).ttl == _policy.MAX_FRESHNESS
    assert [route.call_count for route in routes] == [1, 1]
    traveller.shift(_policy.MAX_FRESHNESS + 1)
    for url in (f"{BASE}/absurd", f"{OTHER}/absurd"):
        assert info(client.get(url)).cache != "hit"  # a year on, not forever


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_non_ascii_validator_is_dropped_at_store_time(
    stack, router, traveller, validator: str
) -> None:
    """An answer with a non-ASCII ETag or Last-Modified is stored without it: once stale,
    the next request is an ordinary one that reaches upstream exactly once."""
    value = '"caf\u00e9"' if validator == "etag" else "Sun, 29 Nov 2026 11:00:00 GMT \u00e9"
    route = router.get(f"{BASE}/accented").respond(
        200, json={"v": 1}, headers=[(validator.encode(), value.encode("utf-8"))]
    )
    client = stack()
    assert client.get(f"{BASE}/accented").json() == {"v": 1}
    traveller.shift(120)  # the profile keeps it fresh for 60 s
    route.respond(200, json={"v": 2})

    response = client.get(f"{BASE}/accented")

    assert response.json() == {"v": 2}
    assert route.call_count == 2
    for call in route.calls:
        assert "if-none-match" not in call.request.headers
        assert "if-modified-since" not in call.request.headers


POISON = str(2**53)


@pytest.mark.parametrize(
    "poison",
    [
        {"x-used": POISON, "x-remaining": "90"},
        {"x-cost": POISON},
        {"x-remaining": POISON, "x-used": "10"},
        # Believable as a first reading (a plan 500 times the profile's), and believed
        # until the next answer says otherwise.
        {"x-used": "50000", "x-remaining": "40"},
    ],
    ids=["used-2**53", "last-2**53", "remaining-2**53", "used-refuted"],
)
def test_one_poisoned_quota_reading_spoils_no_later_request(
    stack, router, caplog, poison: dict[str, str]
) -> None:
    """One answer with absurd quota numbers: later requests are not refused, later sane
    readings are taken (a much smaller ``used`` is not "older"), the warning is logged
    once."""
    route = router.get(url__startswith=f"{BASE}/q/").respond(200, json={}, headers=poison)
    client = stack()
    client.get(f"{BASE}/q/0", extensions={"priority": "critical"})
    client.get(f"{BASE}/q/1", extensions={"priority": "critical"})
    route.respond(200, json={}, headers={"x-used": "12", "x-remaining": "88"})
    client.get(f"{BASE}/q/2", extensions={"priority": "critical"})

    answers = [client.get(f"{BASE}/q/{i}") for i in range(3, 6)]

    assert route.call_count == 6
    assert info(answers[-1]).remaining == 88
    if "50000" not in poison.values():
        implausible = [r for r in caplog.records if "implausible quota reading" in r.message]
        assert len(implausible) == 1
        assert implausible[0].levelname == "WARNING"


def test_state_quotaflow_creates_is_private(stack, router, tmp_path) -> None:
    """A state directory quotaflow makes is 0700; cache.db, state.db and their -wal and
    -shm are 0600."""
    router.get(f"{BASE}/x").respond(200, json={})
    client = stack()
    client.get(f"{BASE}/x")

    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    made = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir() if ".db" in p.name}
    assert {"cache.db", "state.db", "cache.db-wal", "state.db-wal"} <= set(made)
    assert set(made.values()) == {0o600}, made
    client.close()


@pytest.mark.parametrize("name", ["state.db", "cache.db", "state.db-wal"])
def test_state_files_that_are_links_are_set_aside(stack, router, tmp_path, name: str) -> None:
    """A state file (or its -wal) that is a symbolic link is never followed: the link is
    moved aside with a warning, and a private file takes its place."""
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (state / name).symlink_to(target)
    route = router.get(f"{BASE}/x").respond(200, json={"v": 1})

    client = stack()
    assert client.get(f"{BASE}/x").json() == {"v": 1}
    assert client.get(f"{BASE}/x").json() == {"v": 1}
    client.close()

    assert route.call_count == 1
    assert target.read_bytes() == b""  # nothing written through the link
    database = state / name.removesuffix("-wal")
    assert not database.is_symlink()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert list(state.glob(f"{database.name}.symlink-*"))


@pytest.mark.parametrize("where", ["mkdir", "probe"])
def test_full_disk_at_start_falls_back_to_a_private_directory(
    router, tmp_path, monkeypatch, caplog, where: str
) -> None:
    """No space left (ENOSPC) making or writing the state directory: a temporary private
    directory for this process, one warning, requests work; no ConfigError."""
    full = OSError(errno.ENOSPC, "No space left on device")
    state = tmp_path / "full"
    if where == "mkdir":
        real_mkdir = Path.mkdir

        def mkdir(self: Path, *args: object, **kwargs: object) -> None:
            if self == state:
                raise full
            real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    else:
        state.mkdir()
        real = tempfile.TemporaryFile

        def probe(*args: object, **kwargs: object) -> object:
            if kwargs.get("dir") == state:
                raise full
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "TemporaryFile", probe)
    router.get(f"{BASE}/x").respond(200, json={"v": 1})

    with quotaflow.make_client(
        profiles=[api_profile()],
        plugins=False,
        state_dir=state,
        transport=httpx.MockTransport(router.handler),
    ) as client:
        assert client.get(f"{BASE}/x").json() == {"v": 1}

    [warning] = [r for r in caplog.records if "is not writable" in r.getMessage()]
    assert "No space left" in warning.getMessage()
    assert not (state / "state.db").exists()


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A throwaway Redis of this test's own, without persistence, to freeze."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "daemonize": "no"}
    server = subprocess.Popen(
        [
            "redis-server",
            *(part for name, value in options.items() for part in (f"--{name}", value)),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):  # a real process starting: up to 10 s
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None, "redis-server exited"
                time.sleep(0.05)
        yield server, url
    finally:
        client.close()
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait(10)


def test_frozen_redis_does_not_hang_a_request(stack, router, own_redis) -> None:
    """Redis stopped (SIGSTOP) mid-run: with redis_fail="open" a request that misses
    memory still completes, on local state, and reaches upstream once."""
    server, url = own_redis
    routes = [router.get(f"{BASE}/{name}").respond(200, json={"v": name}) for name in "ab"]
    client = stack(redis_url=url, redis_fail="open", redis_prefix="frozen")
    assert client.get(f"{BASE}/a").json() == {"v": "a"}
    server.send_signal(signal.SIGSTOP)
    outcome: list[object] = []

    def request() -> None:
        try:
            outcome.append(client.get(f"{BASE}/b").json())
        except BaseException as exc:  # the outcome is the assertion, whatever it is
            outcome.append(exc)

    worker = threading.Thread(target=request, daemon=True)
    worker.start()
    worker.join(120)  # a guard against a hang only: the answer comes in seconds

    assert outcome == [{"v": "b"}]
    assert [route.call_count for route in routes] == [1, 1]


@settings(derandomize=True, database=None, max_examples=200)
@given(
    name=st.sampled_from(["apikey", "api_key", "access_token", "key"]).flatmap(
        lambda base: st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in base)).map(
            "".join
        )
    ),
    header=st.sampled_from(["location", "content-location", "link"]),
    userinfo=st.booleans(),
)
def test_no_casing_of_a_key_name_survives_storage(name: str, header: str, userinfo: bool) -> None:
    """Whatever the casing of a known key name, and with or without userinfo, the value
    never reaches the stored headers (the defaults and tests/conftest.py's ``key``)."""
    import hishel

    from quotaflow._profiles import DEFAULT_SECRET_PARAMS
    from quotaflow._retention import stored_headers

    credentials = f"user:{PASSWORD}@" if userinfo else ""
    url = f"https://{credentials}api.test/next?a=1&{name}={KEY}"
    value = f"<{url}>; rel=next" if header == "link" else url
    stored = stored_headers(hishel.Headers({header: value}), (*DEFAULT_SECRET_PARAMS, "key"))
    assert KEY not in repr(stored)
    assert PASSWORD not in repr(stored)
    assert "a=1" in repr(stored)


def test_a_link_that_cannot_be_moved_is_refused(tmp_path, monkeypatch) -> None:
    """A state file that is a link and cannot be moved aside: a ConfigError naming it,
    never a database opened through the link."""
    from quotaflow._state import _recovery

    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / "state.db").symlink_to(tmp_path / "elsewhere")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_recovery, "set_aside", refuse)

    with pytest.raises(quotaflow.ConfigError, match="symbolic link"):
        _recovery.check(tmp_path / "state.db")
    assert (tmp_path / "elsewhere").read_bytes() == b""


def test_an_origin_clock_behind_does_not_void_a_profile_freshness(stack, router, traveller) -> None:
    """Issue 13 item 17: Date 2 minutes behind, a 60 s freshness rule: still 60 s from
    when the answer arrived."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    behind = format_datetime(datetime.now(UTC) - timedelta(minutes=2), usegmt=True)
    route = router.get(f"{BASE}/odds").respond(200, json={}, headers={"date": behind})
    client = stack()

    client.get(f"{BASE}/odds")
    traveller.shift(30)
    second = client.get(f"{BASE}/odds")

    assert route.call_count == 1
    assert second.extensions["quotaflow"].cache == "hit"


def test_an_origin_clock_ahead_does_not_stretch_freshness(stack, router, traveller) -> None:
    """Date an hour ahead, max-age 900: stale 15 minutes after it arrived, not 75."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    ahead = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    route = router.get("https://plain.example/x").respond(
        200, json={}, headers={"date": ahead, "cache-control": "max-age=900"}
    )
    client = stack()

    client.get("https://plain.example/x")
    traveller.shift(16 * 60)
    client.get("https://plain.example/x")

    assert route.call_count == 2
