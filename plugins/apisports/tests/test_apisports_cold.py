"""Finished fixtures asked for by id go to quotaflow's cold store (``ApiSportsImmutable``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_apisports import HOST, PROFILE, ApiSportsImmutable, samples

BASE = f"https://{HOST}"
KEY = "SECRET-a1b2c3d4e5f60718293a4b5c6d7e8f90"
DAY = 86400


def _answer(*statuses: str, errors: object = ()) -> httpx.Response:
    items = [samples.fixture(i, 0, status) for i, status in enumerate(statuses, start=1)]
    return samples.response(samples.envelope("fixtures", items, errors=errors))


@pytest.mark.parametrize(
    ("params", "answer", "expected"),
    [
        ({"id": "1"}, _answer("FT"), 30 * DAY),
        ({"ids": "1-2"}, _answer("FT", "PEN"), 30 * DAY),
        ({"ids": "1-2"}, _answer("FT", "2H"), None),
        ({"ids": "1-2"}, _answer("FT"), None),  # one missing
        ({"id": "1"}, _answer("PST"), None),  # postponed: may yet be played
        ({"date": "2025-09-01"}, _answer("FT"), None),  # a list by date changes
        ({"id": "1", "league": "39"}, _answer("FT"), None),
        ({"id": "1"}, samples.response(b"not json"), None),
    ],
)
def test_immutable_rule(params: dict[str, str], answer: httpx.Response, expected: object) -> None:
    request = httpx.Request("GET", f"{BASE}/fixtures", params=params)
    assert ApiSportsImmutable()(request, answer) == expected


def test_finished_fixture_is_answered_cold(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """A week on, past its freshness and max_stale, a finished fixture is still free."""
    body = samples.envelope("fixtures", [samples.fixture(7, start - DAY, "FT")])
    route = router.get(host=HOST, path="/fixtures").mock(
        return_value=samples.response(body, remaining=90)
    )
    with quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        headers={"x-apisports-key": KEY},
        clock=quotaflow.Clock(sleep=traveller.shift),
    ) as client:
        client.get(f"{BASE}/fixtures", params={"id": "7"})
        traveller.shift(7 * DAY)
        again = client.get(f"{BASE}/fixtures", params={"id": "7"})
    info = again.extensions["quotaflow"]
    assert (info.cache, info.tier, info.cost) == ("hit", "cold", 0)
    assert route.call_count == 1
    assert KEY.encode() not in (tmp_path / "cold.db").read_bytes()
