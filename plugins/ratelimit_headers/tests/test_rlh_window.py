"""RateLimitWindow: the short window from rate-limit headers, and the hold it causes
through quotaflow's stack when the API says the window is spent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import WindowReading
from quotaflow_ratelimit_headers import RateLimitWindow, profile_for

HOST = "api.example.test"
URL = f"https://{HOST}/v1/items"
#: 2025-09-04T15:33:20Z, the conftest's START.
NOW = 1_757_000_000


def _read(**headers: str) -> WindowReading:
    names = [(key.replace("_", "-"), value) for key, value in headers.items()]
    return RateLimitWindow()(httpx.Response(200, headers=names))


def test_ietf_spent_member_and_its_reset() -> None:
    """A member with r=0 is a spent window until its t; its policy's q is its size."""
    assert _read(RateLimit='"burst";r=0;t=5') == WindowReading(remaining=0, reset=5)
    reading = _read(
        RateLimit_Policy='"burst";q=100;w=60, "daily";q=1000;w=86400',
        RateLimit='"burst";r=0;t=7, "daily";r=50;t=30000',
    )
    assert reading == WindowReading(remaining=0, reset=7, limit=100)


def test_ietf_several_spent_hold_until_the_last_reset() -> None:
    """Two windows spent: the later reset wins; a spent member without t says nothing."""
    assert _read(RateLimit='"a";r=0;t=5, "b";r=0;t=50, "c";r=0') == WindowReading(0, 50)
    assert _read(RateLimit='"a";r=0, "b";r=3;t=1') == WindowReading(remaining=0)


def test_ietf_room_left_is_the_least_remaining() -> None:
    """Nothing spent: the member with least left (which changes nothing)."""
    assert _read(RateLimit='"a";r=9;t=1, "b";r=4;t=60') == WindowReading(remaining=4, reset=60)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # A t longer than its policy's window: cut to the window.
        (
            {"RateLimit_Policy": '"m";q=5;w=30', "RateLimit": '"m";r=0;t=86400'},
            WindowReading(0, 30, 5),
        ),
        # No t, a policy window: the whole window.
        ({"RateLimit_Policy": '"m";q=5;w=30', "RateLimit": '"m";r=0'}, WindowReading(0, 30, 5)),
        (
            {"RateLimit_Policy": '"m";q=5;w=30', "RateLimit": '"m";r=0;t=12'},
            WindowReading(0, 12, 5),
        ),
        # X-RateLimit-Limit with a window: the reset is cut to it.
        (
            {
                "X_RateLimit_Limit": "60, 60;w=60",
                "X_RateLimit_Remaining": "0",
                "X_RateLimit_Reset": "3600",
            },
            WindowReading(0, 60, 60),
        ),
        ({"X_RateLimit_Limit": "60;w=60", "X_RateLimit_Remaining": "0"}, WindowReading(0, 60, 60)),
        # An epoch reset: measured from Date; within the window it stays the moment.
        (
            {
                "X_RateLimit_Limit": "60;w=60",
                "X_RateLimit_Remaining": "0",
                "X_RateLimit_Reset": str(NOW + 20),
                "Date": "Thu, 04 Sep 2025 15:33:20 GMT",
            },
            WindowReading(0, NOW + 20, 60),
        ),
        (
            {
                "X_RateLimit_Limit": "60;w=60",
                "X_RateLimit_Remaining": "0",
                "X_RateLimit_Reset": str(NOW + 900),
                "Date": "Thu, 04 Sep 2025 15:33:20 GMT",
            },
            WindowReading(0, 60, 60),
        ),
        (
            {
                "X_RateLimit_Limit": "60;w=60",
                "X_RateLimit_Remaining": "0",
                "X_RateLimit_Reset": str(NOW + 20),
            },
            WindowReading(0, 60, 60),
        ),
        # No window stated: the reset as given.
        (
            {"X_RateLimit_Limit": "60", "X_RateLimit_Remaining": "0", "X_RateLimit_Reset": "3600"},
            WindowReading(0, 3600, 60),
        ),
    ],
)
def test_no_hold_outlasts_the_stated_window(
    headers: dict[str, str], expected: WindowReading
) -> None:
    """A reset later than the window the API stated (or none) is cut to the window."""
    assert _read(**headers) == expected


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("30", 30),
        ("1.5", 2),  # rounded up
        ("1500ms", 2),
        (str(NOW + 20), NOW + 20),  # epoch seconds: the moment, as epoch seconds
        (str((NOW + 20) * 1000), NOW + 20),  # epoch milliseconds
        ("Thu, 04 Sep 2025 15:33:40 GMT", NOW + 20),
        ("soon", None),
        ("-5", None),
    ],
)
def test_de_facto_reset_forms(reset: str, expected: int | None) -> None:
    """X-RateLimit-Reset as a wait, in ms, epoch seconds or ms, or a date; else unknown."""
    reading = _read(X_RateLimit_Remaining="0", X_RateLimit_Limit="60", X_RateLimit_Reset=reset)
    assert reading == WindowReading(remaining=0, reset=expected, limit=60)


def test_early_draft_then_de_facto() -> None:
    """RateLimit-Remaining/-Reset, else X-RateLimit-*; IETF RateLimit before both."""
    assert _read(RateLimit_Remaining="0", RateLimit_Reset="9") == WindowReading(0, 9)
    assert _read(RateLimit_Remaining="x", X_RateLimit_Remaining="0") == WindowReading(0)
    assert _read(RateLimit='"a";r=2', X_RateLimit_Remaining="0") == WindowReading(2)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"RateLimit": "garbage"},
        {"RateLimit": '"a";r=-1;t=5'},
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "none"},
        {"X-RateLimit-Reset": "30", "X-RateLimit-Limit": "10"},
    ],
)
def test_unreadable_headers_read_as_unknown(headers: dict[str, str]) -> None:
    """Nothing readable about what remains: an unknown reading."""
    assert RateLimitWindow()(httpx.Response(200, headers=headers)) == WindowReading()


def test_profile_for_reads_the_window() -> None:
    """Every profile the plugin builds reads the window."""
    assert profile_for("x", "x.test").read_window == RateLimitWindow()


def _client(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    sleeps: list[float],
    profile: quotaflow.ApiProfile,
) -> httpx.Client:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        traveller.shift(seconds)

    return quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=sleep),
    )


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"RateLimit": '"minute";r=0;t=4'}, 4.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"}, 3.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW + 2)}, 2.0),
        ({"X-RateLimit-Remaining": "0"}, 5.0),  # no reset: the rate's window
    ],
)
def test_through_quotaflow_a_spent_window_holds_off_until_it_resets(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    headers: dict[str, str],
    wait: float,
) -> None:
    """The next request waits until the reset (NORMAL may wait 5 s), then goes upstream."""
    sleeps: list[float] = []
    route = router.get(host=HOST).mock(return_value=httpx.Response(200, json={}, headers=headers))
    profile = profile_for("example", HOST, rate=100, per=5.0)
    with _client(tmp_path, router, traveller, sleeps, profile) as client:
        client.get(URL)
        with pytest.raises(quotaflow.RateLimited):
            client.get(URL + "/low", extensions={"priority": "low"})
        assert route.call_count == 1
        second = client.get(URL + "/next")
    assert second.extensions["quotaflow"].waited == pytest.approx(wait)
    assert sleeps == [pytest.approx(wait)]
    assert route.call_count == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit": '"minute";r=3;t=4'},
        {"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "zero", "X-RateLimit-Reset": "30"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW - 10)},  # reset already
    ],
)
def test_through_quotaflow_room_left_changes_nothing(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, headers: dict[str, str]
) -> None:
    """Room left, unreadable values or a reset past: a LOW request goes at once."""
    sleeps: list[float] = []
    route = router.get(host=HOST).mock(return_value=httpx.Response(200, json={}, headers=headers))
    profile = profile_for("example", HOST, rate=100, per=5.0)
    with _client(tmp_path, router, traveller, sleeps, profile) as client:
        client.get(URL)
        client.get(URL + "/low", extensions={"priority": "low"})
    assert (route.call_count, sleeps) == (2, [])
