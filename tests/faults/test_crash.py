"""A process killed mid-burst leaves state the next one opens, never under-counting."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import quotaflow
from quotaflow import ApiProfile, Quota

from ..stub_server import StubServer

WORKER = textwrap.dedent(
    """
    import sys, threading
    import quotaflow
    from quotaflow import ApiProfile, Quota

    base, state = sys.argv[1], sys.argv[2]
    profile = ApiProfile(name="stub", hosts=("127.0.0.1",), quota=Quota(100_000), rates=())
    with quotaflow.make_client(profiles=[profile], plugins=False, state_dir=state) as client:
        def burst(worker):
            for n in range(100_000):
                client.get(f"{base}/w{worker}/{n}", extensions={"priority": "critical"})
        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    """
)


def spent(state: Path) -> int:
    """Units the ledger counts as spent: used this period plus those reserved in flight."""
    with sqlite3.connect(state / "state.db") as db:
        total, remaining = db.execute("SELECT total, remaining FROM quota").fetchone()
        (inflight,) = db.execute("SELECT COALESCE(SUM(cost), 0) FROM inflight").fetchone()
    return int(total - remaining + inflight)


@pytest.mark.parametrize("after", [20, 150])
def test_sigkill_mid_burst(tmp_path, after: int) -> None:
    """SIGKILL after some upstream calls: the next process starts cleanly and the ledger
    shows at least as much spent as the stub counted."""
    state = tmp_path / "state"
    with StubServer() as stub:
        worker = subprocess.Popen([sys.executable, "-c", WORKER, stub.base, str(state)])
        deadline = time.monotonic() + 30
        while stub.total < after and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        time.sleep(0.05)  # let requests already on the wire land at the stub
        sent = stub.total

        assert sent >= after
        assert spent(state) >= sent

        profile = ApiProfile(name="stub", hosts=("127.0.0.1",), quota=Quota(100_000), rates=())
        with quotaflow.make_client(profiles=[profile], plugins=False, state_dir=state) as client:
            response = client.get(f"{stub.base}/after-the-crash")
        assert response.status_code == 200
        # The dead process's reservations still count (charged in full once they time out).
        assert spent(state) >= sent + 1


def test_the_state_file_stays_a_database(tmp_path) -> None:
    """After the crashes above the file passes SQLite's own integrity check."""
    state = tmp_path / "state"
    with StubServer() as stub:
        worker = subprocess.Popen([sys.executable, "-c", WORKER, stub.base, str(state)])
        while stub.total < 50 and worker.poll() is None:
            time.sleep(0.001)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)

    for name in ("state.db", "cache.db"):
        with sqlite3.connect(state / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_dead_leaders_lease_is_not_waited_for(stack, router, tmp_path, sleeps) -> None:
    """Issue 13 item 13: a process SIGKILLed while it led a fetch left its lease; the next
    process sees its leader is gone and goes upstream at once, without waiting."""
    from quotaflow._info import storage_key

    url = "https://plain.example/led"
    route = router.get(url).respond(200, json={}, headers={"cache-control": "max-age=60"})
    client = stack()  # makes the state
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        db.execute(
            "INSERT INTO leases (key, token, expires) VALUES (?, ?, ?)",
            (storage_key(url), f"{dead.pid}-abc", time.time() + 30),
        )

    answer = client.get(url)

    assert answer.status_code == 200
    assert route.call_count == 1
    assert sleeps == []  # never polled the dead leader's lease
