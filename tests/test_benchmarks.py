"""Each benchmark runs once at a tiny size, so it never rots (timings are not checked)."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def run_benchmark(monkeypatch, name: str, *args: str) -> int:
    """Run ``benchmarks/NAME.py ARGS`` as ``python`` would, through its main()."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    namespace = runpy.run_path(str(BENCHMARKS / name))
    return namespace["main"]()


@pytest.fixture
def replay(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import replay

    return replay


def test_cassettes_are_what_record_records(monkeypatch, capsys) -> None:
    """The committed cassettes (the benchmarks' and the demo's) are byte for byte what
    record.py records through quotaflow's recorder against the local emulator, small,
    and without its keys."""
    monkeypatch.syspath_prepend(str(BENCHMARKS / "fixtures"))
    assert run_benchmark(monkeypatch, "fixtures/record.py", "--check") == 0
    cassettes = sorted((BENCHMARKS / "fixtures").glob("*.json"))
    assert [path.name for path in cassettes] == ["odds_day.json", "odds_limits.json"]
    assert sum(path.stat().st_size for path in cassettes) < 1_500_000
    demo = BENCHMARKS.parent / "plugins/theoddsapi/quotaflow_theoddsapi/_demo_odds.json"
    for path in [*cassettes, demo]:
        assert b"key-not-real" not in path.read_bytes()
        assert b"127.0.0.1" not in path.read_bytes()


def test_fixtures_match_the_documented_shapes(replay) -> None:
    """Field names as the provider documents them (plugins/theoddsapi/README.md); errors
    as the API sends them."""
    nfl = json.loads(replay.load("odds_nfl").body)
    assert len(nfl) == 16
    assert {len(event["bookmakers"]) for event in nfl} == {8}
    event = nfl[0]
    assert set(event) == {
        "id",
        "sport_key",
        "sport_title",
        "commence_time",
        "home_team",
        "away_team",
        "bookmakers",
    }
    assert len(event["id"]) == 32
    assert event["commence_time"].endswith("Z")
    book = event["bookmakers"][0]
    assert set(book) == {"key", "title", "last_update", "markets"}
    assert [market["key"] for market in book["markets"]] == ["h2h", "spreads", "totals"]
    assert all("point" in outcome for outcome in book["markets"][2]["outcomes"])
    assert {o["name"] for o in book["markets"][2]["outcomes"]} == {"Over", "Under"}
    scores = json.loads(replay.load("scores_nfl").body)
    assert {game["completed"] for game in scores} == {True, False}
    assert any(game["scores"] is None and game["last_update"] is None for game in scores)
    assert all(isinstance(s["score"], str) for game in scores for s in game["scores"] or [])
    sports = json.loads(replay.load("sports").body)
    assert set(sports[0]) == {"key", "group", "title", "description", "active", "has_outrights"}
    for name, status, code in (
        ("error_401_out_of_usage_credits", 401, "OUT_OF_USAGE_CREDITS"),
        ("error_429_exceeded_freq_limit", 429, "EXCEEDED_FREQ_LIMIT"),
        ("error_422_invalid_market", 422, "INVALID_MARKET"),
    ):
        fixture = replay.load(name)
        assert fixture.status == status
        assert set(json.loads(fixture.body)) == {"message", "error_code", "details_url"}
        assert json.loads(fixture.body)["error_code"] == code
    headers = replay.load("odds_nfl").headers
    assert headers["x-requests-last"] == "3"
    assert "date" not in headers
    assert "cache-control" not in headers


def test_replay_router_and_simulated_api(replay) -> None:
    """The router answers the recorded bytes; the simulated API charges as documented."""
    routes = replay.router()
    with httpx.Client(transport=httpx.MockTransport(routes.handler)) as client:
        fixture = replay.load("odds_nfl")
        assert client.get(fixture.url).content == fixture.body
        bad = replay.load("error_422_invalid_market")
        assert client.get(bad.url).status_code == 422
    at = replay.emulator.at(25, 18)  # early games in play
    api = replay.OddsApi(plan=10, clock=lambda: at)
    transport = httpx.MockTransport(api.router().handler)
    with httpx.Client(transport=transport, base_url=replay.HOST) as client:
        key = {"apiKey": replay.API_KEY}
        odds = client.get(
            "/v4/sports/americanfootball_nfl/odds",
            params={**key, "regions": "us,us2", "markets": "h2h,spreads,totals"},
        )
        assert odds.headers["x-requests-last"] == "6"
        assert all(e["commence_time"] != "2026-10-25T13:30:00Z" for e in odds.json())  # over
        assert (
            client.get("/v4/sports/baseball_mlb/scores", params=key).headers["x-requests-last"]
            == "1"
        )
        assert client.get("/v4/sports", params=key).headers["x-requests-last"] == "0"
        spent = client.get(
            "/v4/sports/basketball_nba/odds",
            params={**key, "regions": "us,uk", "markets": "h2h,totals"},
        )
        assert spent.status_code == 401  # 7 used, 4 more would pass the plan of 10
        assert spent.json()["error_code"] == "OUT_OF_USAGE_CREDITS"
        assert client.get("/v4/sports").json()["error_code"] == "MISSING_KEY"
    assert api.used == 7


def test_overhead_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """overhead.py prints every row and target, and writes them as JSON."""
    out = tmp_path / "latest.json"
    args = ("--requests", "2", "--rounds", "1", "--memory-entries", "2", "--json", str(out))
    args += ("--growth", "10", "--builds", "1", "--imports", "1", "--trips", "2")
    args += ("--archive-misses", "3")
    assert run_benchmark(monkeypatch, "overhead.py", *args) == 0
    found = json.loads(out.read_text())["overhead"]
    assert set(found["rows"]) == {
        f"{flavour} {size}" for flavour in ("sync", "async") for size in ("2 KB", "slate", "200 KB")
    }
    for rows in found["rows"].values():
        assert rows["httpx (floor)"]["ratio"] == 1.0
        assert rows["quotaflow hit (hot)"]["upstream_per_request"] == 0
        assert rows["quotaflow hit (warm)"]["upstream_per_request"] == 0
        assert rows["hishel hit"]["upstream_per_request"] == 0
        assert rows["quotaflow miss"]["upstream_per_request"] == 1
        assert rows["pyrate-limiter"]["upstream_per_request"] == 1
        assert rows["hishel miss"]["upstream_per_request"] == 1  # a new URL each time
        for gauge in ("httpx + SQLite read", "httpx + SQLite write"):
            assert rows[gauge]["upstream_per_request"] == 1
    assert "httpx + thread hop" in found["rows"]["async 2 KB"]
    assert "httpx + thread hop" not in found["rows"]["sync 2 KB"]
    bounds = {(bound["group"], bound["path"]) for bound in found["bounds"]}
    assert ("sync 2 KB", "miss") in bounds
    assert ("async 200 KB", "warm hit") in bounds
    assert ("async", "POST, profiled") in bounds
    assert found["memory"]["slate"]["body_bytes"] > 50_000
    assert found["memory"]["200 KB"]["body_bytes"] > 180_000
    paths = found["paths"]
    for row in ("httpx (A/A)", "POST, unprofiled host", "POST, profiled host"):
        assert set(paths["requests"][row]) == {"sync", "async"}
    if paths["redis"] or os.environ.get("CI") == "true":  # Redis rows, with their gauge
        redis_rows = ("Redis hit", "Redis GET alone, added to httpx")
        assert all(set(paths["requests"][row]) == {"sync", "async"} for row in redis_rows)
        assert ("sync", "Redis hit") in bounds
    assert set(paths["build"]) == {"sync", "async"}
    assert paths["import"]["ms"] > 0
    assert len(paths["uncached_growth"]) == 2
    for flavour in ("sync", "async"):  # the state file is written on every miss
        assert paths["round_trips"][flavour]["state.db statements"] > 0
    for mode in ("unchanged", "moved"):
        assert found["archive"]["rss"][mode]["with"]["archive"]["dropped"] == 0
        assert found["archive"]["rss"][mode]["with"]["upstream"] == 3
        assert found["archive"]["cpu"][mode]["dropped"] == 0
    assert found["archive"]["cpu"]["unchanged"]["unchanged"] > 0
    out_text = capsys.readouterr().out
    assert "warm hit <= 1.10x hishel hit" in out_text
    assert "lower bounds from the gauge rows" in out_text
    assert "state round trips per miss" in out_text
    assert "archive worker CPU <= 0.10 of a 200 KB miss (moved)" in out_text
    assert "httpx-frugal" in out_text


def test_profile_benchmark_runs(capsys, monkeypatch) -> None:
    """profile.py prints the top functions of a hot hit, a warm hit and a miss."""
    args = ("--requests", "5", "--misses", "3", "--top", "3")
    assert run_benchmark(monkeypatch, "profile.py", *args) == 0
    out = capsys.readouterr().out
    for kind in ("hot hit", "warm hit", "miss"):
        assert f"{kind} (sync, 2 KB)" in out
    assert "quotaflow's own" in out


def test_concurrency_benchmark_runs(capsys, monkeypatch) -> None:
    """concurrency.py makes one upstream call per URL under load."""
    args = ("--workers", "4", "--requests", "5", "--urls", "3", "--json", "-")
    assert run_benchmark(monkeypatch, "concurrency.py", *args) == 0
    out = capsys.readouterr().out
    assert "quotaflow / httpx (threads)" in out
    assert out.count("upstream calls 3") == 2


def test_processes_benchmark_runs(tmp_path) -> None:
    """processes.py: every process's misses each go upstream once, and a scale is printed
    for quotaflow and bare httpx (spawned children: run as python runs it)."""
    out = tmp_path / "latest.json"
    args = ["--processes", "2", "--misses", "5", "--rounds", "1", "--json", str(out)]
    found = subprocess.run(
        [sys.executable, str(BENCHMARKS / "processes.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "quotaflow scale" in found.stdout
    assert "bare scale" in found.stdout
    found_json = json.loads(out.read_text())["processes"]
    scale, cpu = found_json["scale"], found_json["cpu_per_miss_ratio"]
    assert set(scale) == set(cpu) == {"quotaflow", "bare"}
    assert all(value > 0 for value in (*scale.values(), *cpu.values()))
    assert "CPU a miss takes with 2 processes" in found.stdout


def test_quota_day_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """quota_day.py: quotaflow spends exactly the lower bound across threads and clients."""
    out = tmp_path / "latest.json"
    args = ("--start", "12:55", "--end", "13:05", "--json", str(out))
    assert run_benchmark(monkeypatch, "quota_day.py", *args) == 0
    found = json.loads(out.read_text())["quota_day"]
    bound = found["lower_bound"]["upstream"]
    rows = found["rows"]
    assert rows["plain httpx"]["upstream"] == 3 * bound  # the API never says "cache this"
    assert rows["hishel alone (RFC)"]["upstream"] == 3 * bound
    for name in ("quotaflow (1 client, threads)", "quotaflow (client per worker)"):
        assert rows[name]["upstream"] == bound
        assert rows[name]["past_freshness"] == 0
    assert "lower bound" in capsys.readouterr().out


def test_quota_day_fixed_ttl_stand_in(capsys, monkeypatch) -> None:
    """Without requests-cache, a fixed-TTL dict cache of ours stands in."""
    args = ("--start", "12:55", "--end", "13:00", "--fixed-ttl-dict", "--json", "-")
    assert run_benchmark(monkeypatch, "quota_day.py", *args) == 0
    assert "fixed TTL dict (600 s)" in capsys.readouterr().out


@pytest.mark.parametrize("burst", ["30", "5"])
def test_limiter_accuracy_benchmark_runs(tmp_path, capsys, monkeypatch, burst: str) -> None:
    """limiter_accuracy.py: no 1 s window over 30 (calendar or sliding), the rate used,
    the quota spent to exactly the plan, never past it."""
    out = tmp_path / "latest.json"
    args = ("--requests", "200", "--plan", "5", "--burst", burst, "--json", str(out))
    assert run_benchmark(monkeypatch, "limiter_accuracy.py", *args) == 0
    found = json.loads(out.read_text())["limiter_accuracy"]
    assert found["paid_served"] == 5
    assert found["out_of_credits_401"] == 0
    assert found["refused_by_quotaflow"] == found["paid_demand"] - 5
    assert (found["calendar_seconds_over"], found["sliding_windows_over"]) == (0, 0)
    assert found["max_sliding_second"] == 30
    assert found["utilisation"] >= 0.95
    assert found["targets"] == {"rate": True, "utilisation": True, "quota": True}
    assert "sliding 1 s windows 0" in capsys.readouterr().out


def test_limiter_accuracy_exits_1_on_a_window_over_the_limit(monkeypatch, capsys) -> None:
    """A window over the limit fails the run, as an overspent quota does."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    namespace = runpy.run_path(str(BENCHMARKS / "limiter_accuracy.py"))
    found = {
        "requests": 2, "upstream": 31, "status_counts": {}, "refused_by_quotaflow": 0,
        "backoffs": 0, "first_second": 31, "max_calendar_second": 31,
        "max_sliding_second": 31, "calendar_seconds_over": 1, "sliding_windows_over": 1,
        "seconds": 1, "utilisation": 1.0, "utilisation_calendar": 1.0,
        "utilisation_median_second": 1.0, "paid_demand": 0, "paid_served": 0,
        "credits_spent": 0, "out_of_credits_401": 0, "simulated_seconds": 0.5,
    }  # fmt: skip
    monkeypatch.setitem(namespace["main"].__globals__, "run", lambda *args: found)

    assert namespace["main"](["--json", "-"]) == 1
    assert "MISSED" in capsys.readouterr().out


def test_scale_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """scale.py: warm hits never reach upstream; Redis keys are cleaned up."""
    out = tmp_path / "latest.json"
    args = ("--sizes", "20,40", "--hits", "5", "--misses", "2", "--rounds", "1")
    args += ("--threads", "1,2")
    args += ("--thread-requests", "20", "--rss-requests", "10", "--json", str(out))
    assert run_benchmark(monkeypatch, "scale.py", *args) == 0
    found = json.loads(out.read_text())["scale"]
    for rows in found["entries"].values():
        assert {row["hit"]["upstream"] for row in rows.values()} == {0}
        assert {row["rss"]["upstream"] for row in rows.values()} == {0}  # a fresh process
        assert all(row["rss"]["after_kib"] > 0 for row in rows.values())
        assert {row["hit_aged"]["upstream"] for row in rows.values()} == {0}
        assert {row["miss_aged"]["upstream"] for row in rows.values()} == {2}
    assert set(found["threads"]) == {"1", "2"}
    assert "warm hit" in capsys.readouterr().out


def test_streaming_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """streaming.py streams from its local server: hits never reach it, misses and bodies
    over max_body always do, every body arrives whole (timings are not checked)."""
    out = tmp_path / "latest.json"
    args = ("--size", "300000", "--chunk", "16384", "--max-body", "400000")
    args += ("--over-max-body", "100000", "--rounds", "1", "--json", str(out))
    assert run_benchmark(monkeypatch, "streaming.py", *args) == 0
    found = json.loads(out.read_text())["streaming"]
    assert set(found["rows"]) == {"sync", "async"}
    for rows in found["rows"].values():
        assert rows["httpx (A/A)"]["upstream_per_request"] == 1
        assert rows["quotaflow miss"]["upstream_per_request"] == 1
        assert rows["quotaflow hit"]["upstream_per_request"] == 0
        assert rows["quotaflow over max_body"]["upstream_per_request"] == 1
    out_text = capsys.readouterr().out
    assert "quotaflow over max_body" in out_text
    assert "httpx itself" in out_text


def test_month_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """month.py (two days of it): every row and target printed, critical asks answered
    fresh and the ledger equal to the emulated API's count."""
    out = tmp_path / "latest.json"
    assert run_benchmark(monkeypatch, "month.py", "--days", "2", "--json", str(out)) == 0
    printed = capsys.readouterr().out
    for row in ("plain httpx", "hishel alone (RFC)", "quotaflow (pace=even)"):
        assert row in printed
    assert "target: every critical ask answered fresh" in printed
    found = json.loads(out.read_text())["month"]
    ours = found["rows"]["quotaflow (pace=even)"]
    assert ours["ledger_exact"] is True
    assert set(ours["answers"]["critical"]) == {"fresh"}


def test_cold_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """cold.py: the bodies kept never pass cold_bytes while answers keep coming, and
    every snapshot asked for is paid once (no timing checked)."""
    out = tmp_path / "latest.json"
    args = ("--days", "0.1", "--cold-bytes", "100000", "--every", "20", "--json", str(out))
    assert run_benchmark(monkeypatch, "cold.py", *args) == 0
    found = json.loads(out.read_text())["cold"]
    assert found["within_bound"]
    assert 0 < found["peak_kept_bytes"] <= 100_000
    assert found["evicted"] > 0
    assert found["upstream_calls"] == found["distinct_snapshots"]
    assert "within bound: ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind",
    [
        "bare",
        "ready",
        "hot",
        "warm",
        "miss",
        "plain",
        "get",
        "plainpost",
        "post",
        "pplain",
        "ppost",
        "abare",
        "amiss",
    ],
)
def test_instructions_benchmark_workload_runs(monkeypatch, kind) -> None:
    """instructions.py's measured child runs each row's requests (valgrind not needed)."""
    assert run_benchmark(monkeypatch, "instructions.py", "--child", kind, "3", "--bare") == 0
