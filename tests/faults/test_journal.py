"""Upstream calls made while the state could not record them reach the ledger once it
answers again, each exactly once (issue 13, item 15): a state file locked during part
of a run, a Redis restarted without persistence."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import respx

from quotaflow import Quota
from quotaflow._profiles import QuotaReading
from quotaflow._state import _db, _redis_guard
from quotaflow._state._db import StateDB
from quotaflow._state._journal import Journal
from quotaflow._state._replay import replayed
from quotaflow._state._schema import JOURNAL_FILE
from quotaflow._state._sqlite import SqliteLedger

from ..conftest import BASE, START, Harness, api_profile, info

NOW = START.timestamp()


def test_an_entry_is_counted_once_however_often_it_is_replayed(tmp_path: Path) -> None:
    """A replay that stopped before the journal was rewritten (a crash), or another
    process replaying the same entry, counts it once; the journal is private."""
    profile = api_profile(quota=Quota(100))
    journal = Journal(tmp_path / JOURNAL_FILE)
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"), journal)
    ledger.record(profile, None, 1, QuotaReading(), NOW)  # learns the profile
    entry = journal.new(profile.name, profile.name, "", 3, QuotaReading(), NOW)
    journal.write(entry)
    assert stat.S_IMODE((tmp_path / JOURNAL_FILE).stat().st_mode) == 0o600

    assert replayed(ledger, entry, NOW)  # applied, then the process died before rewriting
    assert ledger.replay(NOW) == 1  # taken off the journal, not counted again
    assert replayed(ledger, entry, NOW)  # and never again

    row = ledger.peek(profile)
    assert row is not None
    assert row.remaining == 100 - 1 - 3
    assert (tmp_path / JOURNAL_FILE).read_text() == ""


def test_a_period_that_ended_is_not_replayed_into_the_next(tmp_path: Path) -> None:
    """An entry of last month is dropped: this month's count is its own."""
    profile = api_profile(quota=Quota(100))
    journal = Journal(tmp_path / JOURNAL_FILE)
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"), journal)
    ledger.record(profile, None, 1, QuotaReading(), NOW)  # learns the profile
    journal.write(journal.new(profile.name, profile.name, "", 5, QuotaReading(), NOW - 40 * 86400))
    assert ledger.replay(NOW) == 1
    row = ledger.peek(profile)
    assert row is not None
    assert row.remaining == 99


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


def test_calls_made_while_the_state_was_locked_reach_the_ledger(
    stack: Callable[..., Harness],
    router: respx.Router,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process holds state.db during part of a run: the calls made meanwhile go
    upstream and, once the file is free, are in the ledger: ledger == upstream calls."""
    monkeypatch.setattr(_db, "BUSY_TIMEOUT", 0.05)
    route = router.get(url__startswith=f"{BASE}/n").respond(200, json={})
    client = stack()
    for n in range(3):
        client.get(f"{BASE}/n{n}")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(tmp_path / "state" / "state.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        for n in range(3, 7):
            client.get(f"{BASE}/n{n}")
    finally:
        holder.communicate("go\n", timeout=10)
    for n in range(7, 9):
        last = client.get(f"{BASE}/n{n}")

    assert route.call_count == 9
    assert info(last).remaining == 100 - 9
    client.close()
    ledger = SqliteLedger(StateDB(tmp_path / "state" / "state.db"))
    row = ledger.peek(api_profile())
    assert row is not None
    assert row.remaining == 100 - 9
    assert (tmp_path / "state" / JOURNAL_FILE).read_text() == ""


class OwnRedis:
    """A Redis of this test's own, without persistence, that can be restarted."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(200):  # a real process starting: up to 10 s
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert self.server.poll() is None, "redis-server exited"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait(10)
            self.server = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_redis_restart_loses_no_count(
    stack: Callable[..., Harness],
    router: respx.Router,
    own_redis: OwnRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis restarted without persistence, with calls while it was down
    (``redis_fail="open"``): the ledger in Redis counts every call of the period."""
    monkeypatch.setattr(_redis_guard, "RETRY_AFTER", 0.0)
    route = router.get(url__startswith=f"{BASE}/n").respond(200, json={})
    client = stack(redis_url=own_redis.url, redis_fail="open", redis_prefix="restart")
    for n in range(5):
        client.get(f"{BASE}/n{n}")
    own_redis.stop()
    for n in range(5, 8):
        client.get(f"{BASE}/n{n}")
    own_redis.start()
    for n in range(8, 12):
        last = client.get(f"{BASE}/n{n}")

    assert route.call_count == 12
    assert info(last).remaining == 100 - 12
    raw = redis.Redis.from_url(own_redis.url)
    try:
        assert int(raw.hget("restart:quota:api", "remaining") or -1) == 100 - 12
    finally:
        raw.close()
