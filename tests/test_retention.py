"""Retention: how long stored answers live in hishel's storage, and what a store costs
as the cache grows. Redis cases run against the real Redis at 127.0.0.1:6379 (skipped
if absent, failed on CI), each under a prefix of its own, deleted afterwards."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis
import respx

import quotaflow
from quotaflow._plan import _PARTS
from quotaflow._policy import freshness_lifetime, has_validator, retention
from quotaflow._state._backend import CACHE_FILE
from quotaflow._state._hishel import CHECKED, EXPIRY_INDEX

from .conftest import BASE, START, Harness, api_profile, info
from .stub_server import REDIS_URL

URL = f"{BASE}/odds"
OTHER = "https://example.org/page"
NOW = START.timestamp()
# api_profile(): fresh for 60 s, served stale for 3600 s more.
KEPT = 60 + 3600
# hishel deletes a hidden entry's data only after this long (its soft_delete_ttl).
SOFT_DELETE = 180


def key_of(url: str) -> str:
    """The storage key of a URL without secrets or query (Route.key)."""
    return hashlib.sha256(url.encode()).hexdigest()


def stored_keys(state_dir: Path) -> list[str]:
    """Cache keys of every row in the SQLite cache, hidden or not."""
    with closing(sqlite3.connect(state_dir / CACHE_FILE)) as connection:
        rows = connection.execute("SELECT cache_key FROM entries ORDER BY cache_key")
        return [bytes(key).decode() for (key,) in rows]


# -- the rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({"cache-control": "public, max-age=120", "expires": "0"}, 120.0),
        (
            {"date": "Sun, 29 Nov 2026 12:00:00 GMT", "expires": "Sun, 29 Nov 2026 12:05:00 GMT"},
            300.0,
        ),
        ({"expires": "0"}, 0.0),  # invalid Expires: already expired (RFC 9111 §5.3)
        (
            {
                "date": "Sun, 29 Nov 2026 12:00:00 GMT",
                "last-modified": "Thu, 19 Nov 2026 12:00:00 GMT",
            },
            86400.0,
        ),
        (
            {
                "date": "Sun, 29 Nov 2026 12:00:00 GMT",
                "last-modified": "Sat, 29 Nov 2025 12:00:00 GMT",
            },
            7 * 86400.0,
        ),
        ({"cache-control": "s-maxage=60"}, None),  # a private cache ignores s-maxage
        ({}, None),
    ],
)
def test_freshness_lifetime(headers: dict[str, str], lifetime: float | None) -> None:
    """RFC 9111 §4.2.1: max-age, else Expires minus Date, else 10 % since Last-Modified
    (§4.2.2, at most a week)."""
    assert freshness_lifetime(httpx.Headers(headers), NOW) == lifetime


def test_retention_rule() -> None:
    """Fresh, then the longer of max_stale and (only with a validator) the revalidation window."""
    rule = {"max_stale": 3600.0, "revalidation_window": 86400.0}
    assert retention(freshness=60, validated=False, **rule) == 3660
    assert retention(freshness=60, validated=True, **rule) == 86460
    assert retention(freshness=None, validated=False, **rule) == 3600
    no_fallback = {"max_stale": 0.0, "revalidation_window": 86400.0}
    assert retention(freshness=None, validated=False, **no_fallback) == 0
    assert retention(freshness=300, validated=False, **no_fallback) == 300
    assert has_validator(httpx.Headers({"ETag": '"v1"'}))
    assert has_validator(httpx.Headers({"last-modified": "Thu, 19 Nov 2026 12:00:00 GMT"}))
    assert not has_validator(httpx.Headers({"cache-control": "max-age=60"}))


@pytest.mark.parametrize("value", [-1, float("inf"), "1 day", None])
def test_revalidation_window_is_validated(value: object) -> None:
    """A bad window is refused when the profile is built, naming the field."""
    with pytest.raises(quotaflow.ConfigError, match=r"ApiProfile\.revalidation_window"):
        api_profile(revalidation_window=value)


def test_revalidation_window_from_a_config_file_is_validated(tmp_path: Path) -> None:
    """Set from TOML it is checked at build time; the message names file, line and field."""
    config = tmp_path / "quotaflow.toml"
    config.write_text("[profiles.api]\nmax_stale = 60\nrevalidation_window = -5\n")

    with pytest.raises(quotaflow.ConfigError) as caught:
        quotaflow.make_client(
            profiles=[api_profile()], plugins=False, config=config, state_dir=tmp_path
        )

    assert "quotaflow.toml, line 3: profiles.api: ApiProfile.revalidation_window" in str(
        caught.value
    )


# -- SQLite -----------------------------------------------------------------------------


def test_stale_within_max_stale_then_deleted(
    stack: Callable[..., Harness], router: respx.Router, traveller, tmp_path: Path
) -> None:
    """Within freshness + max_stale the fallback serves the entry; past it the entry is
    hidden, and hishel's next store deletes its row once the soft-delete window is over."""
    route = router.get(URL).respond(200, json={"price": 1.91})
    router.get(f"{BASE}/later").respond(200, json={"price": 2.05})
    client = stack()
    client.get(URL)

    traveller.shift(KEPT - 1)
    route.mock(side_effect=httpx.ConnectError("down"))
    stale = client.get(URL)
    assert (info(stale).cache, stale.json()) == ("stale", {"price": 1.91})

    traveller.shift(2)
    with pytest.raises(httpx.ConnectError):
        client.get(URL)
    assert stored_keys(tmp_path / "state") == [key_of(URL)]  # hidden, kept for readers

    traveller.shift(SOFT_DELETE)
    client.get(f"{BASE}/later")
    assert stored_keys(tmp_path / "state") == [key_of(f"{BASE}/later")]


def test_default_profile_keeps_validated_answers_for_the_window(
    stack: Callable[..., Harness], router: respx.Router, traveller, tmp_path: Path
) -> None:
    """No profile, no max_stale: an answer without a validator is deleted once stale; one
    with an ETag is kept for revalidation for a day past its freshness, then deleted too."""
    plain, tagged, later = OTHER, f"{OTHER}/tagged", f"{OTHER}/later"
    fresh = {"cache-control": "max-age=60"}
    router.get(plain).respond(200, text="p", headers=fresh)
    router.get(later).respond(200, text="l", headers=fresh)
    route = router.get(tagged).respond(200, text="t", headers={**fresh, "etag": '"t"'})
    client = stack()
    client.get(plain)
    client.get(tagged)

    traveller.shift(60 + 86400 - 1)
    route.respond(304, headers={**fresh, "etag": '"t"'})
    assert info(client.get(tagged)).cache == "revalidated"
    client.get(later)  # a store: hishel's cleanup deletes the plain answer
    assert stored_keys(tmp_path / "state") == sorted([key_of(tagged), key_of(later)])

    traveller.shift(2 + SOFT_DELETE)  # counted from when it was stored, not revalidated
    route.respond(200, text="t2", headers={**fresh, "etag": '"t2"'})
    assert info(client.get(tagged)).cache == "miss"
    assert stored_keys(tmp_path / "state") == [key_of(tagged)]


def _vm_steps(connection: sqlite3.Connection, action: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions ``connection`` runs during ``action``: a
    count of the rows and index entries it visits, which a timing would only hint at."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 1)
    try:
        action()
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def _grow(state_dir: Path, entries: int) -> None:
    """Copy the stored rows under new ids and keys until there are ``entries``."""
    with closing(sqlite3.connect(state_dir / CACHE_FILE)) as connection, connection:
        while (count := connection.execute("SELECT count(*) FROM entries").fetchone()[0]) < (
            entries
        ):
            connection.execute(
                "INSERT INTO entries (id, cache_key, data, expires_at, last_accessed_at,"
                " chunk_count, ttl_deadline, tti) SELECT randomblob(16), hex(randomblob(32)),"
                " data, expires_at, last_accessed_at, chunk_count, ttl_deadline, tti"
                " FROM entries LIMIT ?",
                (entries - count,),
            )


@pytest.mark.parametrize("ttl", ["profile", "none"])
def test_a_store_costs_the_same_in_a_big_aged_cache(
    router: respx.Router, traveller, tmp_path: Path, ttl: str
) -> None:
    """Before every store hishel deletes expired rows. In a cache whose entries have been
    idle past its soft-delete window, that cleanup once walked every row (a miss cost grew
    with the cache: 3.5 ms at 1K entries, 24 ms at 30K). The work of one miss must not grow
    with the number of entries, whether they carry a storage TTL or none (older caches)."""
    router.get(url__startswith=BASE).respond(200, json={"price": 1.91})
    costs = []
    for entries in (200, 6400):
        state_dir = tmp_path / str(entries)
        with quotaflow.make_client(
            profiles=[api_profile(rates=(), quota=None, max_stale=86400)],
            plugins=False,
            state_dir=state_dir,
            transport=httpx.MockTransport(router.handler),
            hot_entries=0,
        ) as client:
            client.get(f"{URL}?n=seed")
            if ttl == "none":
                with closing(sqlite3.connect(state_dir / CACHE_FILE)) as connection:
                    connection.execute("UPDATE entries SET expires_at = NULL, ttl_deadline = NULL")
                    connection.commit()
            _grow(state_dir, entries)
            traveller.shift(600)  # every entry idle past the 180 s window
            storage = _PARTS[client].storage.storage
            client.get(f"{URL}?n=warm-up")  # opens the connection
            costs.append(_vm_steps(storage.connection, lambda: client.get(f"{URL}?n=miss")))
        traveller.shift(-600)

    small, big = costs
    # 32x the entries: the same work, give or take a B-tree level (unindexed: ~60x).
    assert big < small * 1.5, costs


def test_the_cache_carries_the_expiry_index(stack, tmp_path: Path) -> None:
    """Built into every cache file, new or old, so hishel's cleanup can take it."""
    stack()
    with closing(sqlite3.connect(tmp_path / "state" / CACHE_FILE)) as connection:
        plan = connection.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM entries"
            " WHERE expires_at < ? AND last_accessed_at < ? LIMIT 200",
            (NOW, NOW - SOFT_DELETE),
        ).fetchall()
    assert any(EXPIRY_INDEX in str(row) for row in plan), plan


# -- Redis ------------------------------------------------------------------------------


def entry_keys(raw: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(raw.scan_iter(match=f"{prefix}:cache:entry:*"))


def test_redis_keeps_an_entry_for_max_stale_past_hishels_default(
    stack: Callable[..., Harness], router: respx.Router, traveller, prefix: str, raw: redis.Redis
) -> None:
    """max_stale of two days, beyond RedisStorage's 3600 s default: a day later the
    fallback still serves the entry from Redis, and Redis expires it on its own at
    freshness + max_stale (plus hishel's soft-delete window)."""
    max_stale = 2 * 86400
    route = router.get(URL).respond(200, json={"price": 1.91})
    client = stack(
        redis_url=REDIS_URL, redis_prefix=prefix, profiles=[api_profile(max_stale=max_stale)]
    )
    client.get(URL)
    (key,) = entry_keys(raw, prefix)
    assert (60 + max_stale) * 1000 <= raw.pttl(key) <= (60 + max_stale + SOFT_DELETE) * 1000

    traveller.shift(86400)
    route.mock(side_effect=httpx.ConnectError("down"))
    stale = client.get(URL)
    assert (info(stale).cache, stale.json()) == ("stale", {"price": 1.91})


def test_redis_hides_an_entry_past_max_stale(
    stack: Callable[..., Harness], router: respx.Router, traveller, prefix: str, raw: redis.Redis
) -> None:
    """Within freshness + max_stale: served stale; past it: no longer in the cache key's
    index (so nothing serves it), its keys expiring on Redis's own clock."""
    route = router.get(URL).respond(200, json={"price": 1.91})
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix)
    client.get(URL)
    (key,) = entry_keys(raw, prefix)
    assert KEPT * 1000 <= raw.pttl(key) <= (KEPT + SOFT_DELETE) * 1000
    (index,) = raw.scan_iter(match=f"{prefix}:cache:idx:*")
    assert raw.zrange(index, 0, -1, withscores=True)[0][1] == NOW + KEPT

    traveller.shift(KEPT - 1)
    route.mock(side_effect=httpx.ConnectError("down"))
    assert info(client.get(URL)).cache == "stale"

    traveller.shift(2)
    with pytest.raises(httpx.ConnectError):
        client.get(URL)


def test_the_installed_hishel_is_one_its_fence_was_checked_against() -> None:
    """``_state/_hishel.py`` relies on hishel's table layout: a hishel it was not
    checked against fails here, so an upgrade is read again before it ships."""
    from importlib.metadata import version

    assert version("hishel").startswith(CHECKED), (version("hishel"), CHECKED)
