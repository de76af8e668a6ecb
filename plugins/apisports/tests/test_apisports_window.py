"""API-Sports' per-minute window: ``X-RateLimit-Remaining: 0`` holds the profile off
for the minute (no header says when it resets), whoever spent it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import WindowHeaders, WindowReading
from quotaflow_apisports import HOST, PROFILE, make_profile, read_window, samples

BASE = f"https://{HOST}"
TEAMS = "/teams"
MINUTE = 60.0


def _teams(*, remaining: int = 90, minute_remaining: int = 9) -> httpx.Response:
    body = samples.envelope("teams", [])
    return samples.response(body, remaining=remaining, minute_remaining=minute_remaining)


def _client(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, sleeps: list[float]
) -> httpx.Client:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        traveller.shift(seconds)

    return quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        headers={"x-apisports-key": "k"},
        clock=quotaflow.Clock(sleep=sleep),
    )


def test_reads_the_per_minute_headers() -> None:
    """X-RateLimit-Remaining and -Limit are the minute's window; there is no reset."""
    assert PROFILE.read_window is read_window
    assert make_profile(per_minute=300).read_window is read_window
    assert read_window == WindowHeaders(
        remaining="x-ratelimit-remaining", limit="x-ratelimit-limit"
    )
    assert read_window(_teams(minute_remaining=0)) == WindowReading(remaining=0, limit=10)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-RateLimit-Remaining": "abc"},
        {"X-RateLimit-Remaining": "NaN", "X-RateLimit-Limit": "1e999"},
        # The daily quota's headers are not the minute's.
        {"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-limit": "100"},
    ],
)
def test_other_or_malformed_headers_read_as_unknown(headers: dict[str, str]) -> None:
    """Anything but a number in the per-minute headers is unknown."""
    assert read_window(httpx.Response(200, headers=headers)) == WindowReading()


def test_a_spent_minute_holds_off_for_a_minute(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """Another client spent the minute: quotaflow's own window has room, the API's
    says 0. For the minute the next requests are answered stale or refused (every
    priority's max wait is under a minute); near its end they wait, then go upstream."""
    sleeps: list[float] = []
    route = router.get(host=HOST, path=TEAMS)
    route.side_effect = [_teams(), _teams(minute_remaining=0), _teams(minute_remaining=8)]
    with _client(tmp_path, router, traveller, sleeps) as client:
        client.get(BASE + TEAMS, params={"league": "39"})
        traveller.shift(1.5 * 86400)  # stale (fresh a day), within max_stale (a day)
        client.get(BASE + TEAMS, params={"league": "140"})

        with pytest.raises(quotaflow.RateLimited) as refused:
            client.get(BASE + TEAMS, params={"league": "61"}, extensions={"priority": "critical"})
        assert refused.value.retry_after == pytest.approx(MINUTE)
        stale = client.get(BASE + TEAMS, params={"league": "39"}, extensions={"priority": "low"})
        assert stale.extensions["quotaflow"].stale_reason == "rate_limit"
        assert (route.call_count, sleeps) == (2, [])

        traveller.shift(MINUTE - 1)
        after = client.get(BASE + TEAMS, params={"league": "61"})

    assert after.status_code == 200
    assert after.extensions["quotaflow"].waited == pytest.approx(1)
    assert route.call_count == 3
    assert sleeps == [pytest.approx(1)]


@pytest.mark.parametrize("minute_remaining", [1, 9])
def test_room_left_this_minute_changes_nothing(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, minute_remaining: int
) -> None:
    """Some left this minute: the next request goes at once."""
    sleeps: list[float] = []
    route = router.get(host=HOST, path=TEAMS).mock(
        return_value=_teams(minute_remaining=minute_remaining)
    )
    with _client(tmp_path, router, traveller, sleeps) as client:
        client.get(BASE + TEAMS, params={"league": "39"})
        client.get(BASE + TEAMS, params={"league": "140"}, extensions={"priority": "low"})
    assert route.call_count == 2
    assert sleeps == []
