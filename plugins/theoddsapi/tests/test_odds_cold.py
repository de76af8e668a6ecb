"""Historical odds through the cold tier: a backtest in 1-minute steps spends the
credits of the distinct snapshots it covers, once, across restarts.

The emulator below answers ``/v4/historical/sports/{sport}/odds`` as the provider
documents it: the nearest snapshot at or before ``date``, in the wrapper with
``previous_timestamp``/``next_timestamp``, for 10 x markets x regions credits.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_theoddsapi import PROFILE, OddsApiImmutable, normalize, samples, snapshot
from quotaflow_theoddsapi._profile import cost

HOST = "api.the-odds-api.com"
BASE = f"https://{HOST}"
SPORT = "americanfootball_nfl"
HISTORICAL = f"/v4/historical/sports/{SPORT}/odds"
KEY = "SECRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
MINUTE = 60


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Archive:
    """The historical endpoint: snapshots at the given moments; counts what it charged."""

    def __init__(self, moments: list[float]) -> None:
        self.moments = sorted(moments)
        self.calls = 0
        self.credits = 0
        self.served: set[float] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.params["apiKey"] == KEY  # the key still goes upstream
        asked = _at(request.url.params["date"])
        index = bisect.bisect_right(self.moments, asked) - 1
        assert index >= 0
        at = self.moments[index]
        previous = self.moments[index - 1] if index > 0 else None
        following = self.moments[index + 1] if index + 1 < len(self.moments) else None
        charge = cost(request)
        self.calls += 1
        self.credits += charge
        self.served.add(at)
        event = samples.event(SPORT, "Buffalo Bills", "Kansas City Chiefs", at + 86400)
        body = samples.historical([event], at, previous, following)
        used = self.credits
        return samples.response(body, used=used, remaining=5_000_000 - used, last=charge)


def _grid(start: str, step: int, count: int) -> list[float]:
    first = _at(start)
    return [first + i * step for i in range(count)]


@pytest.fixture
def clock(traveller: time_machine.Traveller) -> quotaflow.Clock:
    """Waits for the rate limiter move the clock instead of sleeping."""

    async def asleep(seconds: float) -> None:
        traveller.shift(seconds)

    return quotaflow.Clock(sleep=traveller.shift, asleep=asleep)


def _client(
    tmp_path: Path, router: respx.Router, clock: quotaflow.Clock, **kwargs: Any
) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[attrs.evolve(PROFILE, quota=quotaflow.Quota(5_000_000))],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
        **kwargs,
    )


def _steps(day: str, minutes: int) -> Iterator[str]:
    first = _at(day)
    for i in range(minutes):
        yield samples.iso(first + i * MINUTE)


def _get(client: httpx.Client, date: str) -> httpx.Response:
    params = {"apiKey": KEY, "regions": "us", "markets": "h2h", "date": date}
    return client.get(f"{BASE}{HISTORICAL}", params=params)


def _covers(response: httpx.Response, date: str) -> bool:
    body = response.json()
    return _at(body["timestamp"]) <= _at(date) < _at(body["next_timestamp"])


@pytest.mark.parametrize(
    ("label", "moments", "snapshots"),
    [
        # 5-minute snapshots, two missing (an outage at 09:00 and 09:05).
        (
            "5-minute era",
            [
                m
                for m in _grid("2023-10-14T23:00:00Z", 300, 320)
                if m not in (_at("2023-10-15T09:00:00Z"), _at("2023-10-15T09:05:00Z"))
            ],
            288 - 2,
        ),
        # 10-minute snapshots at :05, :15, ... (the provider's example); the day
        # begins inside the 23:55 snapshot of the day before.
        ("10-minute era", _grid("2022-06-14T23:05:00Z", 600, 160), 144 + 1),
    ],
)
def test_backtest_spends_one_call_per_snapshot(
    tmp_path: Path,
    router: respx.Router,
    clock: quotaflow.Clock,
    label: str,
    moments: list[float],
    snapshots: int,
) -> None:
    """1,440 one-minute steps over a day, with a restart half-way: each distinct
    snapshot is paid for once (10 x markets x regions), every answer is the snapshot
    the API gives for that minute, and a second run reads nothing upstream."""
    archive = Archive(moments)
    router.get(host=HOST, path=HISTORICAL).mock(side_effect=archive)
    day = "2023-10-15T00:00:00Z" if label == "5-minute era" else "2022-06-15T00:00:00Z"
    dates = list(_steps(day, 1440))

    with _client(tmp_path, router, clock) as first:
        answers = [_get(first, date) for date in dates[:720]]
    with _client(tmp_path, router, clock) as restarted:  # same state directory
        answers += [_get(restarted, date) for date in dates[720:]]

    assert all(_covers(answer, date) for answer, date in zip(answers, dates, strict=True))
    assert len(archive.served) == snapshots
    assert archive.calls == snapshots
    assert archive.credits == 10 * snapshots

    with _client(tmp_path, router, clock) as again:
        tiers = {_info(_get(again, date)).tier for date in dates}
    assert archive.calls == snapshots
    assert tiers <= {"cold", "memory"}
    assert "cold" in tiers


def test_backtest_async(tmp_path: Path, router: respx.Router, clock: quotaflow.Clock) -> None:
    """The async client: an hour in 1-minute steps, twelve snapshots, twelve calls."""
    archive = Archive(_grid("2023-10-15T00:00:00Z", 300, 40))
    router.get(host=HOST, path=HISTORICAL).mock(side_effect=archive)
    dates = list(_steps("2023-10-15T00:00:00Z", 60))

    async def run() -> list[httpx.Response]:
        async with quotaflow.make_async_client(
            profiles=[attrs.evolve(PROFILE, quota=quotaflow.Quota(5_000_000))],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=clock,
        ) as client:
            params = {"apiKey": KEY, "regions": "us", "markets": "h2h"}
            return [
                await client.get(f"{BASE}{HISTORICAL}", params={**params, "date": date})
                for date in dates
            ]

    first = anyio.run(run)
    second = anyio.run(run)
    assert archive.calls == 12
    assert all(_covers(answer, date) for answer, date in zip(first, dates, strict=True))
    assert {_info(answer).tier for answer in second} <= {"cold", "memory"}
    assert _info(second[0]).tier == "cold"


def test_latest_snapshot_is_not_kept_cold(
    tmp_path: Path,
    router: respx.Router,
    clock: quotaflow.Clock,
    traveller: time_machine.Traveller,
) -> None:
    """The newest snapshot (no next_timestamp yet) may be followed by one at or before
    the date asked: it is stored as usual, not for good."""
    archive = Archive(_grid("2023-10-15T00:00:00Z", 300, 2))
    route = router.get(host=HOST, path=HISTORICAL).mock(side_effect=archive)
    with _client(tmp_path, router, clock) as client:
        assert _get(client, "2023-10-15T01:00:00Z").json()["next_timestamp"] is None
        traveller.shift(40 * 86400)  # past the warm tier's 30 days
        assert _info(_get(client, "2023-10-15T01:00:00Z")).cache == "miss"
    assert route.call_count == 2


def _info(response: httpx.Response) -> quotaflow.ResponseInfo:
    found = response.extensions["quotaflow"]
    assert isinstance(found, quotaflow.ResponseInfo)
    return found


def _request(path: str, **params: str) -> httpx.Request:
    return httpx.Request("GET", f"{BASE}{path}", params=params)


@pytest.mark.parametrize(
    ("date", "rounded"),
    [
        ("2023-10-15T12:34:56Z", "2023-10-15T12:30:00Z"),
        ("2023-10-15T12:35:00Z", None),  # already on the grid
        ("2022-06-15T00:07:00+00:00", "2022-06-15T00:05:00Z"),
        ("2023-10-15T12:34:56", "2023-10-15T12:30:00Z"),  # naive: UTC
        ("not a date", None),
    ],
)
def test_normalize_rounds_historical_dates(date: str, rounded: str | None) -> None:
    url = normalize(_request(HISTORICAL, date=date, apiKey=KEY))
    if rounded is None:
        assert url is None
    else:
        assert url is not None
        assert url.params["date"] == rounded
        assert url.params["apiKey"] == KEY


def test_normalize_leaves_other_endpoints_alone() -> None:
    assert normalize(_request(f"/v4/sports/{SPORT}/odds", date="2023-10-15T12:34:56Z")) is None


def _answer(body: Any) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(body).encode())


def test_snapshot_windows() -> None:
    request = _request(HISTORICAL, date="2023-10-15T12:30:00Z", regions="us")
    asked = snapshot(request, None)
    assert asked is not None
    assert asked.start == asked.end == _at("2023-10-15T12:30:00Z")
    body = {
        "timestamp": "2023-10-15T12:25:00Z",
        "previous_timestamp": None,
        "next_timestamp": "2023-10-15T12:35:00Z",
        "data": [],
    }
    covered = snapshot(request, _answer(body))
    assert covered is not None
    assert (covered.series, covered.start, covered.end) == (
        asked.series,
        _at("2023-10-15T12:25:00Z"),
        _at("2023-10-15T12:35:00Z"),
    )
    assert "date" not in covered.series
    assert snapshot(request, _answer({**body, "next_timestamp": None})) is None
    assert snapshot(_request(f"/v4/sports/{SPORT}/odds"), None) is None


def test_immutable_rules() -> None:
    """Historical snapshots with a successor for good; scores asked for by event id,
    all completed, for 30 days; nothing else."""
    rule = OddsApiImmutable()
    wrapper = {"timestamp": "2023-10-15T12:25:00Z", "next_timestamp": "2023-10-15T12:30:00Z"}
    historical = _request(HISTORICAL, date="2023-10-15T12:25:00Z")
    assert rule(historical, _answer({**wrapper, "data": []})) == math.inf
    assert rule(historical, _answer({**wrapper, "next_timestamp": None, "data": []})) is None
    assert rule(historical, _answer([])) is None

    scores = f"/v4/sports/{SPORT}/scores"
    done = [{"id": "a", "completed": True}, {"id": "b", "completed": True}]
    assert rule(_request(scores, eventIds="a,b"), _answer(done)) == 30 * 86400
    assert rule(_request(scores), _answer(done)) is None  # the list changes with time
    assert rule(_request(scores, eventIds="a,b,c"), _answer(done)) is None
    live = [{"id": "a", "completed": True}, {"id": "b", "completed": False}]
    assert rule(_request(scores, eventIds="a,b"), _answer(live)) is None
    assert rule(_request(f"/v4/sports/{SPORT}/odds"), _answer([])) is None
