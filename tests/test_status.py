"""quotaflow status: counts kept by the built-in subscriber, read back per profile."""

from __future__ import annotations

import builtins
import io
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

import quotaflow
from quotaflow import ApiProfile, Quota, Rate, _cli_status, _dashboard
from quotaflow._cli import main
from quotaflow._state._counters import COLUMNS
from quotaflow._state._gate import GATE_MARK, NO_GATE, GateState, gate_of
from quotaflow._status import ProfileStatus, gate_fields

from .conftest import BASE, START, api_profile
from .stub_server import REDIS_URL

URL = f"{BASE}/odds"


def status(capsys, state) -> list[dict]:
    assert main(["status", "--state-dir", str(state), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_counts_what_happened_today(stack, router, traveller, tmp_path, capsys) -> None:
    """Hits, misses, stale, refused, saved units, quota, tokens and the last error."""
    route = router.get(url__startswith=URL).respond(200, json={}, headers={"x-cost": "2"})
    profile = api_profile(
        quota=Quota(10), cost=lambda request: 2, rates=(Rate(5, per=1.0, burst=5),)
    )
    client = stack(profiles=[profile])
    client.get(URL)
    client.get(URL)
    client.get(URL)
    traveller.shift(61)
    route.mock(side_effect=httpx.ConnectError("down"))
    client.get(URL)
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}, headers={"x-cost": "2"}))
    for n in range(3):
        client.get(f"{URL}/{n}")
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{URL}/refused")
    client.close()

    statuses = _cli_status.collect(tmp_path / "state", None, "quotaflow", profiles=[profile])
    (found,) = [s.as_dict() for s in statuses if s.profile == "api"]
    (unknown,) = [s for s in status(capsys, tmp_path / "state") if s["profile"] == "api"]

    assert found["today"] == {
        "hits": 2,
        "misses": 4,
        "revalidated": 0,
        "stale": 1,
        "refused": 1,
        "saved": 4,
        "spent": 8,
    }
    assert (found["total"], found["used"], found["remaining"]) == (10, 8, 2)
    assert found["resets_at"] == "2026-12-01T00:00:00Z"
    assert found["last_error"] == "ConnectError"
    assert found["circuit"] == "closed"
    assert found["tokens"] == 1  # five in the burst, four spent within a second
    # Without the profile installed, the CLI still shows what the state knows.
    assert (unknown["today"], unknown["remaining"]) == (found["today"], 2)


def test_hits_are_counted_without_a_write_each(stack, router, tmp_path) -> None:
    """Counts wait in memory (a batch every 5 s of traffic), and are written at close."""
    router.get(URL).respond(200, json={})
    client = stack()
    for _ in range(50):
        client.get(URL)

    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        before = db.execute("SELECT COUNT(*) FROM counters").fetchone()[0]
    client.close()
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        hits, misses = db.execute("SELECT hits, misses FROM counters").fetchone()

    assert before == 0
    assert (hits, misses) == (49, 1)


def test_status_without_rich_prints_plain_text(tmp_path, capsys, monkeypatch) -> None:
    """The cli extra is optional: without rich the same facts come as plain lines."""
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("rich"):
            raise ImportError("no rich here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "theoddsapi" in out
    assert "quota      0/500 used, 500 left" in out


def test_status_table(tmp_path, capsys) -> None:
    """The rich table names every installed profile with its quota."""
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "quotaflow status" in out
    assert "theoddsapi" in out
    assert "0/500" in out


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], dict[str, Any]]:
    """``shared(n)``: the settings of client ``n`` and of the status reading it: one
    state directory, or Redis under the test's own prefix with a state directory each
    (so the local event notes of one client are not those of the other)."""
    if request.param == "sqlite":
        return lambda n: {"state_dir": tmp_path / "state"}
    prefix = request.getfixturevalue("prefix")
    return lambda n: {
        "state_dir": tmp_path / f"state-{n}",
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
    }


def gate_status(settings: dict[str, Any], profile: ApiProfile) -> dict[str, Any]:
    """What ``quotaflow status --json`` says of ``profile`` (installed) on ``settings``."""
    statuses = _cli_status.collect(
        settings["state_dir"],
        settings.get("redis_url"),
        settings.get("redis_prefix", "quotaflow"),
        profiles=[profile],
    )
    (found,) = [s.as_dict() for s in statuses if s.profile == profile.name]
    json.dumps(found)  # as the CLI prints it
    return {key: found[key] for key in GATE_FIELDS}


GATE_FIELDS = (
    "circuit",
    "failures",
    "open_until",
    "open_seconds_left",
    "probe_until",
    "paused",
    "paused_until",
    "pause_seconds_left",
)
CLOSED = {
    "circuit": "closed",
    "failures": 0,
    "open_until": None,
    "open_seconds_left": None,
    "probe_until": None,
    "paused": False,
    "paused_until": None,
    "pause_seconds_left": None,
}


def test_a_fresh_state_is_closed_and_not_paused(stack, router, shared) -> None:
    """Before any request, and after answers that set nothing in the gate."""
    router.get(url__startswith=URL).respond(200, json={})
    profile = api_profile(breaker_threshold=3)
    shared(0)["state_dir"].mkdir()  # empty: status refuses a directory that is not there

    assert gate_status(shared(0), profile) == CLOSED
    client = stack(profiles=[profile], **shared(0))
    client.get(URL)
    assert gate_status(shared(0), profile) == CLOSED


def test_a_429_pause_shows_until_when(stack, router, shared, traveller, capsys) -> None:
    """Retry-After: 30 pauses every process on the state: status says until when, and
    how long is left; once it has passed, not paused."""
    router.get(url__startswith=URL).respond(429, headers={"retry-after": "30"})
    profile = api_profile(breaker_threshold=0)
    client = stack(profiles=[profile], **shared(0))

    assert client.get(URL).status_code == 429
    paused = gate_status(shared(1), profile)
    traveller.shift(10)
    later = gate_status(shared(1), profile)
    client.close()  # the counters are written: the CLI knows the profile without it
    args = ["--state-dir", str(shared(0)["state_dir"])]
    if "redis_url" in shared(0):
        args += ["--redis-url", REDIS_URL, "--redis-prefix", shared(0)["redis_prefix"]]
    assert main(["status", *args, "--json"]) == 0
    (printed,) = [s for s in json.loads(capsys.readouterr().out) if s["profile"] == "api"]
    traveller.shift(20)
    over = gate_status(shared(1), profile)

    now_plus_30 = "2026-11-29T12:00:30Z"
    assert paused == {
        **CLOSED,
        "paused": True,
        "paused_until": now_plus_30,
        "pause_seconds_left": 30.0,
    }
    assert (later["paused_until"], later["pause_seconds_left"]) == (now_plus_30, 20.0)
    assert (printed["paused"], printed["paused_until"]) == (True, now_plus_30)
    assert over == CLOSED


def test_the_shared_circuit_open_half_open_closed(stack, router, shared, traveller) -> None:
    """Failures in a row count across clients; at the threshold status says open until
    when; after the cool-down half-open, with the probe out while it runs; its success
    closes it, for a status read on the other client's state directory too (whose own
    events saw the circuit open, never closed)."""
    route = router.get(url__startswith=URL).mock(side_effect=httpx.ConnectError("down"))
    profile = api_profile(breaker_threshold=3, breaker_cooldown=30)
    first, second = (stack(profiles=[profile], **shared(n)) for n in (0, 1))
    seen: list[dict[str, Any]] = []
    for client in (first, second):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{URL}/{len(seen)}")
        seen.append(gate_status(shared(0), profile))
    with pytest.raises(httpx.ConnectError):
        first.get(f"{URL}/third")  # the third failure in a row opens the circuit
    opened = gate_status(shared(1), profile)
    traveller.shift(30)
    half_open = gate_status(shared(1), profile)

    def probe(request: httpx.Request) -> httpx.Response:
        seen.append(gate_status(shared(0), profile))
        return httpx.Response(200, json={})

    route.mock(side_effect=probe)
    assert second.get(f"{URL}/probe").status_code == 200
    first.close()  # first's events saw the circuit open, and not the probe's success

    assert [s["failures"] for s in seen[:2]] == [1, 2]
    assert [s["circuit"] for s in seen[:2]] == ["closed", "closed"]
    assert opened == {
        **CLOSED,
        "circuit": "open",
        "failures": 3,
        "open_until": "2026-11-29T12:00:30Z",
        "open_seconds_left": 30.0,
    }
    assert half_open == {**CLOSED, "circuit": "half-open", "failures": 3}
    assert seen[2] == {
        **CLOSED,
        "circuit": "half-open",
        "failures": 3,
        "probe_until": "2026-11-29T12:01:30Z",  # the probe's lease: 60 s
    }
    assert gate_status(shared(0), profile) == CLOSED
    assert gate_status(shared(1), profile) == CLOSED


def test_gate_of_reads_what_the_limiter_stored() -> None:
    """The stored layouts: books only (older states), books and gate, a passed pause."""
    books = (5_000, 0, 1, 4_000, 1)
    assert gate_of(books, 5_000) == NO_GATE
    assert gate_of((), 5_000) == NO_GATE
    assert gate_of((*books, 9_000, 2, 0, 0, GATE_MARK), 5_000) == GateState(9_000, 2, 0, 0)
    # A pause is over for whoever checks at or after it, as for the limiter.
    assert gate_of((*books, 9_000, 2, 0, 0, GATE_MARK), 9_000) == GateState(0, 2, 0, 0)


def test_the_views_show_the_gate() -> None:
    """The table, the plain text and the dashboard say paused until when, and the
    circuit with its failures in a row."""
    now = START.timestamp()
    gate = GateState(pause=int(now * 1000) + 30_000, failures=5, opened=int(now * 1000) + 12_000)
    status = ProfileStatus(
        profile="api",
        total=None,
        remaining=None,
        used=None,
        resets_at=None,
        rate=None,
        tokens=None,
        today=dict.fromkeys(COLUMNS, 0),
        last_error=None,
        last_error_at=None,
        days=[],
        **gate_fields(gate, now),
    )

    console = Console(file=io.StringIO(), width=200)
    console.print(_cli_status._rich_table([status]))
    plain = io.StringIO()
    _cli_status._plain([status], plain)
    page = _dashboard.render_page([status], now)

    table = console.file.getvalue()  # type: ignore[attr-defined]
    assert "open 12s (5 failed)" in table
    assert "30s, to 12:00:30Z" in table
    for shown in (plain.getvalue(), page):
        assert "open until 12:00:12Z (12s left), 5 failed" in shown
        assert "until 12:00:30Z (30s left)" in shown
    assert '<span class="badge open" data-field="circuit">open</span>' in page
    assert '<span class="badge paused">paused</span>' in page


def test_status_reports_lost_state_without_a_traceback(tmp_path, capsys, monkeypatch) -> None:
    """Shared state that stops answering mid-read (Redis gone): one line, exit 1."""
    from quotaflow import _cli_status
    from quotaflow.exceptions import StateUnavailable

    def gone(args):  # type: ignore[no-untyped-def]
        raise StateUnavailable("redis_url: lost redis://127.0.0.1:6379/0 (Connection reset)")

    monkeypatch.setattr(_cli_status, "run", gone)

    assert main(["status", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == "quotaflow status: redis_url: lost redis://127.0.0.1:6379/0 (Connection reset)\n"


def test_status_refuses_a_missing_state_dir(tmp_path, capsys, monkeypatch) -> None:
    """A state directory that does not exist is a usage error: one line, exit 2, and
    nothing created (a typo must not show a believable empty quota). The default
    directory ($QUOTAFLOW_HOME) is held to the same rule; the dashboard too."""
    typo = tmp_path / "typo"
    assert main(["status", "--state-dir", str(typo)]) == 2
    assert main(["status", "--json", "--state-dir", str(typo)]) == 2
    monkeypatch.setenv("QUOTAFLOW_HOME", str(typo))
    assert main(["status"]) == 2
    assert main(["dashboard", "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 4
    assert all(f"state directory {typo} does not exist" in line for line in lines)
    assert not typo.exists()


def long_status(profile: str, error: str | None = None) -> ProfileStatus:
    today = dict.fromkeys(COLUMNS, 0) | {"hits": 12345, "misses": 678}
    return ProfileStatus(
        profile, 20000, 19000, 1000, "2026-12-31T00:00:00Z", "30/1s", 30, today, error,
        "2026-11-29T12:00:00Z" if error else None, "open", 5, "2026-11-29T12:05:00Z", 299.0,
        None, True, "2026-11-29T12:01:00Z", 59.0, [],
    )  # fmt: skip


def render(width: int) -> list[str]:
    statuses = [
        long_status("theoddsapi", "OUT_OF_USAGE_CREDITS: Usage quota has been reached " * 3),
        long_status("apisports"),
    ]
    console = Console(file=io.StringIO(), width=width)
    console.print(_cli_status._rich_table(statuses, width))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("width", "last"),
    [(40, "today"), (80, "circuit"), (100, "paused"), (132, "saved"), (200, "last error")],
)
def test_status_table_fits_the_width(width, last) -> None:
    """The table never runs past the terminal's edge nor wraps a cell: it drops its least
    needed columns instead (last error, saved, resets, tokens, paused, circuit), and keeps
    the profile, the quota and today's answers at any width (wrapping only those)."""
    lines = render(width)
    assert max(len(line.rstrip()) for line in lines) <= width
    header = next(line for line in lines if "profile" in line)
    shown = [name for name, _, _ in _cli_status._COLUMNS if f" {name} " in header]
    assert shown == [name for name, _, _ in _cli_status._COLUMNS][: len(shown)]
    assert shown[-1] == last
    rows = [line for line in lines if "theodds" in line or "apispor" in line]
    assert len(rows) == 2
    if width >= 80:  # one line a profile: nothing wrapped
        assert all("1000/20000" in row and "12345/678/0/0/0" in row for row in rows)
    if last == "last error":
        assert "OUT_OF_USAGE_CREDITS" in rows[0]
        assert "…" in rows[0]  # the error is cut short, not wrapped


def test_status_command_fits_80_columns(tmp_path, capsys) -> None:
    """Output that is not a terminal is drawn 80 columns wide, not forced wider."""
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any(line.startswith("│ theoddsapi") and "0/500" in line for line in lines)


def test_status_watch(tmp_path, capsys, monkeypatch) -> None:
    """--watch redraws the same 80-column table every SECONDS until Ctrl-C (exit 0)."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_cli_status.time, "sleep", sleep)
    assert main(["status", "--watch", "2", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert waits == [2.0, 2.0]
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any(line.startswith("│ theoddsapi") and "0/500" in line for line in lines)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_each_credential_shows_as_its_own_quota_account(
    stack, router, tmp_path, backend, request
) -> None:
    """Two keys, two accounts, each named by a short fingerprint, never by the key."""
    router.get(url__startswith=URL).respond(200, json={}, headers={"x-cost": "1"})
    profile = api_profile(quota=Quota(10))
    redis = {}
    if backend == "redis":
        prefix = request.getfixturevalue("prefix")
        redis = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    client = stack(profiles=[profile], **redis)
    for key, calls in (("first-key-value", 3), ("second-key-value", 1)):
        for n in range(calls):
            client.get(f"{URL}/{n}", params={"key": key})
    client.close()

    statuses = _cli_status.collect(
        tmp_path / "state",
        redis.get("redis_url"),
        redis.get("redis_prefix", "quotaflow"),
        profiles=[profile],
    )
    accounts = {s.profile: s.used for s in statuses if s.profile.startswith("api#")}

    assert sorted(accounts.values()) == [1, 3]
    assert all(len(name) == len("api#") + 8 for name in accounts)
    assert "key-value" not in repr(statuses)


def test_status_reads_quotaflow_toml_like_the_client(tmp_path, capsys, monkeypatch) -> None:
    """A quota changed in quotaflow.toml, and an API defined there alone, show in status
    as the client sees them (not the plugin's defaults)."""
    state = tmp_path / "state"
    config = tmp_path / "quotaflow.toml"
    config.write_text(
        '[apis.tomlonly]\nhosts = ["toml.example"]\nquota = { limit = 777, period = "day" }\n'
    )
    monkeypatch.setenv("QUOTAFLOW_CONFIG", str(config))
    quotaflow.make_client(plugins=False, state_dir=state).close()

    found = {s["profile"]: s for s in status(capsys, state)}

    assert found["tomlonly"]["total"] == 777


def test_status_watch_fits_80_columns_and_stops_on_ctrl_c(monkeypatch) -> None:
    """--watch redraws the same table in place: 80 columns when the output is not a
    terminal, every line within them, and Ctrl-C ends it with status 0, no traceback."""
    from types import SimpleNamespace

    from quotaflow import _cli_status

    statuses = [
        long_status("theoddsapi", "OUT_OF_USAGE_CREDITS: Usage quota has been reached " * 3),
        long_status("apisports"),
    ]
    monkeypatch.setattr(_cli_status, "collect", lambda *args: statuses)
    redraws = []

    def sleep(seconds: float) -> None:
        redraws.append(seconds)
        if len(redraws) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(_cli_status.time, "sleep", sleep)
    args = SimpleNamespace(
        json=False, watch=1.0, state_dir=None, redis_url=None, redis_prefix="quotaflow"
    )
    out = io.StringIO()
    assert _cli_status.run(args, out) == 0
    lines = [line for line in re.split(r"\r|\n|\x1b\[[0-9;?]*[A-Za-z]", out.getvalue()) if line]
    assert redraws == [1.0, 1.0, 1.0]
    assert any("theoddsapi" in line for line in lines)
    assert max(len(line.rstrip()) for line in lines) <= 80
