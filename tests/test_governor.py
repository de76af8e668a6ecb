"""The quota governor (issue 14): pacing to the reset, max_stale per priority, refusals
that say what happened, the forecast and low-quota alerts."""

from __future__ import annotations

import io
import json
import logging
import pickle
import textwrap
from datetime import UTC, datetime

import httpx
import pytest

import quotaflow
from quotaflow import (
    ApiProfile,
    ConfigError,
    Priority,
    Quota,
    QuotaExhausted,
    QuotaReading,
    _cli_status,
    _config,
    _policy,
)
from quotaflow._cli import main
from quotaflow._state._books import forecast
from quotaflow._state._db import StateDB
from quotaflow._state._sqlite import SqliteLedger

from .conftest import BASE, START, api_profile, info

URL = f"{BASE}/odds"
# The stack's clock starts at 2026-11-29 12:00 UTC: a period reset on the 29th is
# half a day old then, one of 30 days (to 2026-12-29).
QUOTA = Quota(100, reset_day=29)
NOW = START.timestamp()


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# --- pure decisions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quota", "now", "end"),
    [
        (Quota(1, period="day"), ts(2026, 3, 5, 23, 59), ts(2026, 3, 6)),
        (Quota(1), ts(2026, 3, 5, 10), ts(2026, 4, 1)),
        (Quota(1), ts(2026, 12, 31, 10), ts(2027, 1, 1)),
        (Quota(1, reset_day=31), ts(2026, 3, 31), ts(2026, 4, 30)),
        (Quota(1, reset_day=15), ts(2026, 3, 14, 23), ts(2026, 3, 15)),
    ],
)
def test_period_end_is_the_next_reset(quota: Quota, now: float, end: float) -> None:
    """The period ends on the next billing day (clamped to the month), or at midnight."""
    assert _policy.period_end(quota, now) == end


def test_even_pace_spreads_the_quota_less_the_reserve() -> None:
    """The plan's budget is the elapsed share of the quota, less the priority's reserve
    (what more urgent requests may spend ahead of it), plus 1 %; the first request of a
    period goes at reserve 0, whatever it costs."""
    start, end = ts(2026, 11, 1), ts(2026, 12, 1)
    half = start + (end - start) / 2
    kwargs = {"start": start, "end": end, "total": 500}

    assert _policy.pace_budget(now=half, reserve=0.2, **kwargs) == pytest.approx(155)
    assert _policy.pace_budget(now=end + 5, reserve=0.0, **kwargs) == pytest.approx(505)
    assert _policy.pace_budget(now=start, reserve=0.04, **kwargs) == pytest.approx(-15)
    assert _policy.paced(now=start, spent=0, cost=6, reserve=0.0, **kwargs)
    assert not _policy.paced(now=start, spent=6, cost=1, reserve=0.0, **kwargs)
    assert not _policy.paced(now=start, spent=0, cost=1, reserve=0.04, **kwargs)
    assert _policy.paced(now=half, spent=154, cost=1, reserve=0.2, **kwargs)
    assert not _policy.paced(now=half, spent=155, cost=1, reserve=0.2, **kwargs)
    assert _policy.paced(now=half, spent=499, cost=0, reserve=0.2, **kwargs)  # free


def test_forecast_extrapolates_the_burn_rate() -> None:
    """Units left at the reset at the rate so far; when it runs out; nothing too early."""
    start, end = ts(2026, 11, 1), ts(2026, 12, 1)
    day3 = ts(2026, 11, 4)  # a tenth of the period
    kwargs = {"start": start, "end": end, "total": 500}

    assert _policy.forecast(now=day3, spent=100, **kwargs) == pytest.approx(-500)
    assert _policy.forecast(now=day3, spent=25, **kwargs) == pytest.approx(250)
    assert _policy.runs_out(now=day3, spent=100, **kwargs) == pytest.approx(ts(2026, 11, 16))
    assert _policy.runs_out(now=day3, spent=25, **kwargs) is None  # lasts past the reset
    assert _policy.forecast(now=start + 60, spent=5, **kwargs) is None


def test_forecast_of_a_ledger_row(tmp_path) -> None:
    """The helper reads the row of the current period (another period's tells nothing)."""
    profile = api_profile(quota=Quota(500))
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"))
    now = ts(2026, 11, 4)
    assert forecast(profile, ledger.peek(profile), now) is None
    ledger.settle(profile, None, 0, QuotaReading(remaining=400, used=100), now)

    assert forecast(profile, ledger.peek(profile), now) == pytest.approx(-500)
    assert forecast(profile, ledger.peek(profile), ts(2026, 12, 4)) is None


# --- profile fields --------------------------------------------------------------------


def test_max_stale_per_priority() -> None:
    """A mapping gives each priority its own limit; a priority left out takes the nearest
    more urgent one named; as a number, max_stale is the longest (what keeps answers)."""
    profile = api_profile(max_stale={"critical": 900, "normal": 86400})

    limits = [profile.stale_limit(p) for p in Priority]
    assert limits == [900, 900, 86400, 86400]  # critical, high, normal, low
    assert float(profile.max_stale) == 86400
    assert api_profile(max_stale=60).stale_limit(Priority.CRITICAL) == 60
    assert api_profile(max_stale={"low": 60}).stale_limit(Priority.CRITICAL) == 60
    # Equal only to the same limits; hashable, as every profile field is.
    same = api_profile(max_stale={"critical": 900, "normal": 86400, "low": 86400})
    assert profile.max_stale == same.max_stale
    assert profile.max_stale != 86400
    assert api_profile(max_stale=dict.fromkeys(Priority, 30)).max_stale == 30
    assert len({profile.max_stale, same.max_stale}) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_stale": {"urgent": 5}}, "max_stale"),
        ({"max_stale": {"low": -1}}, "max_stale"),
        ({"max_stale": {}}, "max_stale"),
        ({"pace": "fast"}, "pace"),
        ({"pace": [1] * 23}, "pace"),
        ({"pace": [0] * 24}, "pace"),
        ({"pace": [1] * 23 + [-1]}, "pace"),
        ({"pace": [1] * 23 + [float("inf")]}, "pace"),
        ({"pace": [1] * 23 + [True]}, "pace"),
        ({"alerts": (1.5,)}, "alerts"),
        ({"alerts": ("10%",)}, "alerts"),
        ({"alerts": (-3,)}, "alerts"),
    ],
)
def test_bad_governor_settings_name_their_field(changes: dict[str, object], field: str) -> None:
    """Pacing, per-priority max_stale and alerts are checked when the profile is built."""
    with pytest.raises(ConfigError, match=f"ApiProfile.{field}"):
        api_profile(**changes)


def test_alert_levels_are_units_left() -> None:
    """A float is a share of the quota, an int a number of units; highest first."""
    assert api_profile().alert_levels(500) == (50,)  # the default: 10 %
    assert api_profile(alerts=(0.02, 100, 0.10)).alert_levels(500) == (100, 50, 10)
    assert api_profile(alerts=()).alert_levels(500) == ()


def test_pace_and_max_stale_from_quotaflow_toml(tmp_path) -> None:
    """[profiles.NAME] pace, max_stale per priority and alerts go through the file."""
    path = tmp_path / "quotaflow.toml"
    path.write_text(
        textwrap.dedent(
            """
            [profiles.api]
            pace = "even"
            max_stale = { critical = 900, low = 86400 }
            alerts = [0.1, 20]
            """
        )
    )
    (profile,) = _config.apply(_config.load(path), [api_profile()])

    assert profile.pace == "even"
    # The priorities the file names change; the others keep the profile's 3600.
    assert [profile.stale_limit(p) for p in Priority] == [900, 3600, 3600, 86400]
    assert profile.alerts == (0.1, 20)
    # A mapping in the file changes the priorities it names; the others keep theirs.
    path.write_text("[profiles.api]\nmax_stale = { critical = 60 }\n")
    (changed,) = _config.apply(_config.load(path), [profile])
    assert [changed.stale_limit(p) for p in Priority] == [60, 3600, 3600, 86400]
    path.write_text('[profiles.api]\npace = "fast"\n')
    with pytest.raises(ConfigError, match="pace"):
        _config.apply(_config.load(path), [api_profile()])


def test_an_hourly_pace_spreads_the_quota_by_the_weight_of_each_hour() -> None:
    """24 weights, one per UTC hour: a day of night (weight 0) then day (weight 1) hours
    spends nothing by noon, a quarter of two days' quota by 18:00, half by midnight."""
    weights = (0.0,) * 12 + (1.0,) * 12
    start, end = ts(2026, 3, 5), ts(2026, 3, 7)
    kwargs = {"start": start, "end": end, "pace": weights}

    shares = [_policy.elapsed_share(now=ts(2026, 3, 5, hour), **kwargs) for hour in (3, 12, 18)]
    assert shares == [0.0, 0.0, 0.25]
    assert _policy.elapsed_share(now=ts(2026, 3, 6), **kwargs) == 0.5
    assert _policy.elapsed_share(now=ts(2026, 3, 6, 12, 30), **kwargs) == pytest.approx(
        0.5 + 1 / 48
    )
    assert _policy.elapsed_share(now=end + 3600, **kwargs) == 1.0
    # Even weights are the even pace.
    flat = {"start": start, "end": end, "pace": (2.0,) * 24}
    assert _policy.elapsed_share(now=ts(2026, 3, 5, 7), **flat) == pytest.approx(7 / 48)
    budget = _policy.pace_budget(now=ts(2026, 3, 5, 18), total=400, reserve=0.0, **kwargs)
    assert budget == pytest.approx(400 * (0.25 + 0.01))


def test_an_hourly_pace_from_quotaflow_toml(tmp_path) -> None:
    """``pace = [24 numbers]`` in the file; a list of another length names the field."""
    path = tmp_path / "quotaflow.toml"
    path.write_text("[profiles.api]\npace = [" + ", ".join(["0"] * 8 + ["1"] * 16) + "]\n")
    (profile,) = _config.apply(_config.load(path), [api_profile()])
    assert profile.pace == (0.0,) * 8 + (1.0,) * 16
    path.write_text("[profiles.api]\npace = [1, 2, 3]\n")
    with pytest.raises(ConfigError, match="pace"):
        _config.apply(_config.load(path), [api_profile()])


# --- the ledger ------------------------------------------------------------------------


def test_ledger_holds_normal_and_low_to_the_pace(tmp_path) -> None:
    """Paced: NORMAL and LOW wait for the plan, HIGH and CRITICAL spend ahead of it."""
    reserves = {"normal": 0.0, "low": 0.05}
    profile = api_profile(quota=Quota(100, reset_day=29), pace="even", reserves=reserves)
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"))
    # Half a day of 30: NORMAL's budget is 100 x (1/60 + 1 %) = 2.7; LOW's 5 less.
    with pytest.raises(QuotaExhausted) as held:
        ledger.reserve(profile, Priority.LOW, 1, NOW)
    assert "held to the pace: 0 of 0 spent by now (resets 2026-12-29T00:00:00Z)" in str(held.value)
    # LOW's 5 % reserve is ahead of the plan's line: the refusal says what to change.
    assert "not yet passed low's 5% reserve" in str(held.value)
    ledger.reserve(profile, Priority.NORMAL, 1, NOW)
    ledger.reserve(profile, Priority.NORMAL, 1, NOW)
    with pytest.raises(QuotaExhausted, match="held to the pace: 2 of 2 spent by now") as normal:
        ledger.reserve(profile, Priority.NORMAL, 1, NOW)
    assert "reserve" not in str(normal.value)  # NORMAL has none: only the plan holds it
    for level in (Priority.HIGH, Priority.CRITICAL):
        assert ledger.reserve(profile, level, 5, NOW) is not None
    # A week on, LOW may have spent 100 x (7.5 / 30 - 5 % + 1 %) = 21.
    assert ledger.reserve(profile, Priority.LOW, 1, NOW + 7 * 86400) is not None
    # Unpaced, the reserves alone decide.
    assert ledger.reserve(api_profile(quota=QUOTA), Priority.LOW, 1, NOW) is not None


def test_ledger_holds_normal_to_an_hourly_pace(tmp_path) -> None:
    """Weighted by hour, the plan spends nothing in the hours of weight 0: NORMAL gets
    only the 1 % allowance by noon of the first day, then a share of each evening."""
    evenings = (0.0,) * 18 + (1.0,) * 6
    profile = api_profile(quota=Quota(600, reset_day=29), pace=evenings, reserves={"normal": 0})
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"))
    for _ in range(6):  # 1 % of 600
        ledger.reserve(profile, Priority.NORMAL, 1, NOW)
    with pytest.raises(QuotaExhausted, match="held to the pace: 6 of 6 spent by now"):
        ledger.reserve(profile, Priority.NORMAL, 1, NOW)
    # At 22:00 on the first day, 4 of the 30 x 6 weighted hours have passed:
    # 600 x (4/180 + 1 %) = 19.3.
    evening = NOW + 10 * 3600
    for _ in range(13):
        ledger.reserve(profile, Priority.NORMAL, 1, evening)
    with pytest.raises(QuotaExhausted, match="held to the pace: 19 of 19 spent"):
        ledger.reserve(profile, Priority.NORMAL, 1, evening)
    # An even pace would have let 600 x (22/720 + 1 %) = 24 go by then.
    assert ledger.reserve(profile, Priority.CRITICAL, 1, evening) is not None


def test_an_alert_is_told_once_across_processes(tmp_path) -> None:
    """Two ledgers on one state: only the answer that crossed a level reports it, and
    profiles pickle with their per-priority max_stale (for worker processes)."""
    profile = api_profile(quota=Quota(100), alerts=(0.10,))
    first = SqliteLedger(StateDB(tmp_path / "state.db"))
    second = SqliteLedger(StateDB(tmp_path / "state.db"))

    crossed = [
        ledger.record(profile, None, 0, QuotaReading(remaining=left), NOW).crossed
        for ledger, left in ((first, 11), (second, 10), (first, 9), (second, 12), (first, 3))
    ]

    assert crossed == [(), (10,), (), (), (10,)]
    plain = ApiProfile(name="api", hosts=("api.test",), max_stale={"critical": 60, "low": 600})
    assert pickle.loads(pickle.dumps(plain)) == plain


def test_refusals_say_what_happened(tmp_path) -> None:
    """At 0 left it is "quota used up until <reset>", not a reserve of 0 %."""
    profile = api_profile(quota=QUOTA)
    ledger = SqliteLedger(StateDB(tmp_path / "state.db"))
    ledger.settle(profile, None, 0, QuotaReading(remaining=2, used=98), NOW)
    with pytest.raises(QuotaExhausted, match="needs more than the 2 of 100 units left until"):
        ledger.reserve(profile, Priority.CRITICAL, 3, NOW)

    ledger.settle(profile, None, 0, QuotaReading(remaining=0, used=100), NOW)
    with pytest.raises(QuotaExhausted) as used_up:
        ledger.reserve(profile, Priority.CRITICAL, 1, NOW)
    assert str(used_up.value) == "api: quota used up until 2026-12-29T00:00:00Z"


# --- through the client ----------------------------------------------------------------


def test_paced_low_is_answered_stale_then_refused_with_the_reason(stack, router, traveller) -> None:
    """A held LOW request gets the stored answer within max_stale (reason "quota"), else
    QuotaExhausted saying it is held to the pace; CRITICAL goes upstream."""
    route = router.get(url__startswith=BASE).respond(200, json={"v": 1})
    profile = api_profile(quota=QUOTA, pace="even", reserves={"low": 0}, cost=lambda r: 2)
    client = stack(profiles=[profile])
    with quotaflow.priority("low"):
        client.get(URL)  # the period's first request goes
        traveller.shift(61)
        stale = client.get(URL)
        with pytest.raises(QuotaExhausted, match="held to the pace: 2 of 2 spent by now"):
            client.get(f"{BASE}/other")
    critical = client.get(f"{BASE}/other", extensions={"priority": "critical"})

    assert (info(stale).cache, info(stale).stale_reason) == ("stale", "quota")
    assert info(critical).cache == "miss"
    assert route.call_count == 2
    traveller.shift(7 * 86400)  # a week on, the plan has room again
    assert info(client.get(f"{BASE}/third", extensions={"priority": "low"})).cache == "miss"
    assert route.call_count == 3


def test_critical_has_its_own_short_max_stale(stack, router, traveller) -> None:
    """Quota used up: LOW gets day-old odds within its limit, CRITICAL past its own short
    limit gets the error, which says the quota is used up until the reset."""
    route = router.get(URL).respond(200, json={"v": 1}, headers={"x-remaining": "0"})
    profile = api_profile(quota=QUOTA, max_stale={"critical": 600, "low": 86400})
    client = stack(profiles=[profile])
    client.get(URL)
    traveller.shift(60 + 300)  # 300 s past its freshness: within critical's 600 s
    assert info(client.get(URL, extensions={"priority": "critical"})).cache == "stale"
    traveller.shift(3600)

    low = client.get(URL, extensions={"priority": "low"})
    with pytest.raises(QuotaExhausted) as refused:
        client.get(URL, extensions={"priority": "critical"})

    assert (info(low).cache, info(low).stale_reason) == ("stale", "quota")
    assert "quota used up until 2026-12-29T00:00:00Z" in str(refused.value)
    assert route.call_count == 1


def test_quota_low_alerts_once_per_crossing(stack, router, caplog) -> None:
    """QuotaLow and one WARNING each time the quota falls to a level, not every request."""
    seen: list[quotaflow.events.Event] = []
    left = iter([50, 11, 10, 9, 8, 4, 3])
    router.get(url__startswith=BASE).mock(
        side_effect=lambda request: httpx.Response(
            200, json={}, headers={"x-remaining": str(next(left))}
        )
    )
    client = stack(
        profiles=[api_profile(quota=Quota(100), alerts=(0.10, 5))], subscribers=[seen.append]
    )
    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        for n in range(7):
            client.get(f"{BASE}/{n}", extensions={"priority": "critical"})

    lows = [e for e in seen if isinstance(e, quotaflow.events.QuotaLow)]
    assert [(e.remaining, e.threshold, e.total) for e in lows] == [(10, 10, 100), (4, 5, 100)]
    warnings = [r.getMessage() for r in caplog.records if "alert at" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("profile api: 10 of 100 quota units left (alert at 10)")


def test_status_and_plan_show_the_forecast(stack, router, traveller, tmp_path, capsys) -> None:
    """At 40 spent 4 days into a 30-day month, the rate runs out before the reset:
    ``status`` (plain, table and --json) and ``plan`` say so."""
    router.get(url__startswith=BASE).respond(200, json={}, headers={"x-remaining": "60"})
    profile = api_profile(quota=Quota(100))
    client = stack(profiles=[profile])
    traveller.move_to(datetime(2026, 11, 5, tzinfo=UTC))
    client.get(URL)
    urls = [f"{BASE}/new"]
    if client.mode == "sync":
        plan = quotaflow.plan(client.client, urls, priority="critical")
    else:
        plan = client._portal.call(
            lambda: quotaflow.aplan(client.client, urls, priority="critical")
        )
    client.close()

    (found,) = [
        s
        for s in _cli_status.collect(tmp_path / "state", None, "quotaflow", profiles=[profile])
        if s.profile == "api"
    ]
    assert found.forecast_at_reset == -200  # 40 in 4 days: 300 by the reset
    assert found.runs_out_at == "2026-11-11T00:00:00Z"
    assert plan.forecast_at_reset == {"api": -200}
    assert main(["status", "--state-dir", str(tmp_path / "state"), "--json"]) == 0
    (printed,) = [s for s in json.loads(capsys.readouterr().out) if s["profile"] == "api"]
    # Not installed where the CLI runs, the profile's period is unknown: no forecast.
    assert (printed["forecast_at_reset"], printed["runs_out_at"]) == (None, None)
    plain = io.StringIO()
    _cli_status._plain([found], plain)
    assert "forecast   runs out 2026-11-11 00:00 at this rate" in plain.getvalue()


def test_the_forecast_rides_on_the_answer_and_the_event(stack, router) -> None:
    """Half a day into a 30-day period, the API says 90 of 100 are left: at that rate
    the reset finds 100 - 10 x 60 = -500 (the quota runs out first). The answer's
    ResponseInfo and the QuotaChanged event say so; a hit, which the API never saw,
    says nothing."""
    from quotaflow import events

    seen: list[events.Event] = []
    router.get(URL).respond(200, json={}, headers={"x-remaining": "90", "x-used": "10"})
    client = stack(profiles=[api_profile(quota=QUOTA)], subscribers=[seen.append])

    fetched, hit = client.get(URL), client.get(URL)

    assert info(fetched).forecast == pytest.approx(-500)
    assert (info(hit).cache, info(hit).forecast) == ("hit", None)
    changed = [e for e in seen if isinstance(e, events.QuotaChanged)]
    assert [(e.remaining, e.forecast) for e in changed] == [(90, pytest.approx(-500))]
