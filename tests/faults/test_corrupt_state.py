"""Corrupt, busy or unwritable state never breaks a request (faults injected for real)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

import quotaflow
from quotaflow._plan import _PARTS
from quotaflow._state import _db as _state

from ..conftest import BASE, api_profile, info

URL = f"{BASE}/odds"


def client_on(state: Path, router: respx.Router, clock: quotaflow.Clock) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[api_profile()],
        plugins=False,
        state_dir=state,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    )


def fill(state: Path, router: respx.Router, clock: quotaflow.Clock, n: int = 40) -> None:
    """A state directory with real entries in both files."""
    body = {"rows": ["x" * 2000] * 4}
    router.get(url__startswith=f"{BASE}/fill/").respond(200, json=body)
    with client_on(state, router, clock) as client:
        for i in range(n):
            client.get(f"{BASE}/fill/{i}")


def aside(state: Path, name: str) -> list[Path]:
    """The database files moved aside (their -wal and -shm travel with them)."""
    found = state.glob(f"{name}.corrupt-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm")))


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and name in r.getMessage()
    ]


@pytest.mark.parametrize("name", ["state.db", "cache.db"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_file_is_set_aside_and_rebuilt(tmp_path, router, clock, caplog, name, damage):
    """Garbage or a truncated file: the request works, the file is moved aside, one warning."""
    state = tmp_path / "state"
    fill(state, router, clock)
    target = state / name
    if damage == "garbage":
        target.write_bytes(os.urandom(8192))
    else:
        with target.open("r+b") as file:
            file.truncate(target.stat().st_size // 3)
    for suffix in ("-wal", "-shm"):
        target.with_name(name + suffix).unlink(missing_ok=True)
    route = router.get(URL).respond(200, json={"v": 1})

    with caplog.at_level(logging.WARNING), client_on(state, router, clock) as client:
        first = client.get(URL)
        second = client.get(URL)

    assert (first.status_code, first.json()) == (200, {"v": 1})
    assert info(second).cache == "hit"
    assert route.call_count == 1
    assert len(aside(state, name)) == 1
    assert len(warnings_about(caplog, name)) == 1
    with sqlite3.connect(target) as db:  # rebuilt, and a database again
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)


def test_state_file_damaged_while_running(tmp_path, router, clock, caplog) -> None:
    """The state files turn to garbage under a running client: no request fails, and the
    next start finds the damage, sets the file aside and rebuilds it."""
    state = tmp_path / "state"
    route = router.get(url__startswith=BASE).respond(200, json={})
    with client_on(state, router, clock) as client:
        client.get(f"{BASE}/a")
        for name in ("state.db", "state.db-wal"):  # same inodes, new bytes
            path = state / name
            with path.open("r+b") as file:
                file.write(os.urandom(path.stat().st_size))
        statuses = [client.get(f"{BASE}/{n}").status_code for n in "bcd"]
    with caplog.at_level(logging.WARNING), client_on(state, router, clock) as restarted:
        statuses.append(restarted.get(f"{BASE}/e").status_code)

    assert statuses == [200, 200, 200, 200]
    assert route.call_count == 5
    assert len(aside(state, "state.db")) == 1
    assert len(warnings_about(caplog, "state.db")) == 1


def test_state_locked_past_the_busy_timeout(tmp_path, router, clock, caplog, monkeypatch) -> None:
    """Another process holds the state file locked: requests go straight upstream."""
    monkeypatch.setattr(_state, "BUSY_TIMEOUT", 0.05)
    state = tmp_path / "state"
    route = router.get(url__startswith=BASE).respond(200, json={})
    with client_on(state, router, clock) as client:
        client.get(f"{BASE}/warm")
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import sqlite3, sys
                    db = sqlite3.connect({str(state / "state.db")!r}, isolation_level=None)
                    db.execute("BEGIN EXCLUSIVE")
                    print("locked", flush=True)
                    sys.stdin.readline()
                    """
                ),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            with caplog.at_level(logging.WARNING):
                responses = [client.get(f"{BASE}/{n}") for n in range(3)]
            # One full wait, then short ones while the file stays held (issue 13 item 12).
            db = _PARTS[client].backend.db
            assert db.busy_timeout == _state.BUSY_SHORT
        finally:
            holder.communicate("go\n", timeout=10)
        db._busy_until = 1e-9  # the spell is over: the next transaction waits in full again
        client.get(f"{BASE}/later")
        assert db.busy_timeout == _state.BUSY_TIMEOUT

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert route.call_count == 5
    assert len(warnings_about(caplog, "state.db")) == 1
    assert aside(state, "state.db") == []  # busy is not corrupt: nothing moved


READ_ONLY_WORKER = textwrap.dedent(
    """
    import logging, sys
    import httpx, respx, quotaflow
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    router = respx.Router()
    route = router.get("https://api.test/odds").respond(200, json={"v": 1})
    profile = quotaflow.ApiProfile(name="api", hosts=("api.test",), quota=quotaflow.Quota(10),
                                   freshness=lambda request, response, now: 60)
    with quotaflow.make_client(profiles=[profile], plugins=False, state_dir=sys.argv[1],
                               transport=httpx.MockTransport(router.handler)) as client:
        statuses = [client.get("https://api.test/odds").status_code for _ in range(2)]
    print(statuses, route.call_count)
    """
)


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's own tmp_path is private to
    root), with a ``tmp`` it may write, used as its TMPDIR so that whatever it leaves
    there is removed with the rest."""
    home = Path(tempfile.mkdtemp(prefix="quotaflow-ro-"))
    home.chmod(0o755)
    (home / "tmp").mkdir()
    (home / "tmp").chmod(0o777)
    try:
        yield home
    finally:
        shutil.rmtree(home)


def test_read_only_state_directory(nobody_home: Path) -> None:
    """A state_dir the process may not write: requests work, one warning names it."""
    state = nobody_home / "read-only"
    state.mkdir(mode=0o555)
    result = run_as_nobody(state, nobody_home)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[200, 200] 1"
    assert f"state_dir {state} is not writable" in result.stderr


def test_read_only_fallback_is_removed_on_close(nobody_home: Path) -> None:
    """The private temporary directory used instead of a read-only state_dir is gone once
    the client is closed."""
    state = nobody_home / "read-only"
    state.mkdir(mode=0o555)
    result = run_as_nobody(state, nobody_home)

    assert result.returncode == 0, result.stderr
    assert list((nobody_home / "tmp").iterdir()) == []


def run_as_nobody(state: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            READ_ONLY_WORKER,
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(home), "TMPDIR": str(home / "tmp")},
    )


def hold_locked(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path``'s write lock (BEGIN EXCLUSIVE) until told."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys
                db = sqlite3.connect({str(path)!r}, isolation_level=None)
                db.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_cache_locked_past_the_busy_timeout(
    tmp_path, router, clock, caplog, monkeypatch, flavour
) -> None:
    """Another process holds cache.db's write lock: a request waits for it once (not
    hishel's 5 s per statement, per request); for the spell after that, stores wait
    50 ms and the answers go unstored, while stored answers are still hits (issue 13
    item 12)."""
    from quotaflow._state import _hishel

    monkeypatch.setattr(_hishel, "BUSY_TIMEOUT", 0.2)
    state = tmp_path / "state"
    fresh = {"cache-control": "max-age=600"}
    route = router.get(url__startswith=BASE).respond(200, json={}, headers=fresh)
    options: dict[str, object] = {"profiles": [api_profile()], "plugins": False}
    options.update(state_dir=state, clock=clock)

    def run(urls: list[str]) -> tuple[list[int], float]:
        """Status codes, and the cache's busy wait after them (seconds)."""

        async def arun() -> tuple[list[int], float]:
            transport = httpx.MockTransport(router.async_handler)
            async with quotaflow.make_async_client(**options, transport=transport) as client:
                codes = [(await client.get(url)).status_code for url in urls]
                return codes, _PARTS[client].storage.storage.spell.busy_timeout

        if flavour == "async":
            return asyncio.run(arun())
        transport = httpx.MockTransport(router.handler)
        with quotaflow.make_client(**options, transport=transport) as client:
            codes = [client.get(url).status_code for url in urls]
            return codes, _PARTS[client].storage.storage.spell.busy_timeout

    run([f"{BASE}/warm"])  # stored, fresh for 10 minutes
    holder = hold_locked(state / "cache.db")
    try:
        with caplog.at_level(logging.WARNING):
            urls = [f"{BASE}/warm", *(f"{BASE}/{n}" for n in range(3)), f"{BASE}/warm"]
            codes, waiting = run(urls)
    finally:
        holder.communicate("go\n", timeout=10)

    assert codes == [200] * 5
    assert waiting == _state.BUSY_SHORT  # one full wait, then short ones
    # The stored answer stayed a hit both times; the three new URLs went upstream once.
    assert route.call_count == 1 + 3
    assert len(warnings_about(caplog, "cache.db")) == 1
    assert aside(state, "cache.db") == []  # busy is not corrupt: nothing moved
    # The lock gone, a new client stores again (and waits in full for a lock).
    codes, waiting = run([f"{BASE}/0", f"{BASE}/0"])
    assert route.call_count == 1 + 3 + 1
    assert waiting == 0.2
