"""A profile's ``read_window``: when the API says its short window is spent (requests
on the same key we never saw spent it), the profile holds off until it resets, through
the same shared pause as a 429 with Retry-After."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
import time_machine

from quotaflow import ApiProfile, ConfigError, Rate, WindowHeaders, WindowReading
from quotaflow._transports._attempts import window_hold
from tests.conftest import BASE, Harness, api_profile, held_for_30s

READER = WindowHeaders(remaining="x-window-left", reset="x-window-reset", limit="x-window-size")


def windowed(**changes: Any) -> list[ApiProfile]:
    """The test API's profile, reading the window from x-window-* headers."""
    return [api_profile(read_window=READER, **changes)]


def sent_at(router: respx.Router, path: str) -> tuple[respx.Route, list[float]]:
    """A route answering 200 that notes the (simulated) moment of each upstream call."""
    moments: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        moments.append(time.time())
        return httpx.Response(200, json={"path": path}, headers={"x-window-left": "3"})

    return router.get(f"{BASE}{path}").mock(side_effect=answer), moments


def test_a_spent_window_holds_the_profile_until_its_reset(
    stack: Callable[..., Harness],
    router: respx.Router,
    traveller: time_machine.Traveller,
    sleeps: list[float],
) -> None:
    """remaining 0, reset in 30 s: LOW is answered stale (or refused), NORMAL (max wait
    5 s) is refused, CRITICAL (max wait 30 s) waits exactly until the reset, then goes
    upstream; past it nobody waits."""
    warm = router.get(f"{BASE}/warm").respond(200, json={"v": 1}, headers={"x-window-left": "4"})
    router.get(f"{BASE}/odds").respond(
        200, json={}, headers={"x-window-left": "0", "x-window-reset": "30"}
    )
    fresh, moments = sent_at(router, "/fresh")
    client = stack(profiles=windowed())
    client.get(f"{BASE}/warm")
    traveller.shift(61)  # the stored answer is stale now, within max_stale
    until = time.time() + 30

    assert client.get(f"{BASE}/odds").status_code == 200

    response = held_for_30s(client, warm, fresh, sleeps)

    assert response.json() == {"path": "/fresh"}
    assert moments == [until]
    assert client.get(f"{BASE}/fresh?again=1").status_code == 200
    assert sleeps == [30.0]


def test_the_hold_is_shared_by_every_client_on_the_state(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """One client reads the spent window; another on the same state holds off too."""
    router.get(f"{BASE}/odds").respond(
        200, json={}, headers={"x-window-left": "0", "x-window-reset": "4"}
    )
    fresh, _ = sent_at(router, "/fresh")
    first, second = stack(profiles=windowed()), stack(profiles=windowed())
    first.get(f"{BASE}/odds")

    response = second.get(f"{BASE}/fresh")

    assert response.status_code == 200
    assert sleeps == [4.0]
    assert fresh.call_count == 1


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        # No reset: the shortest rate's window...
        ({"x-window-left": "0"}, 1.0),
        ({"x-window-left": "0", "x-window-reset": "soon"}, 1.0),
        ({"x-window-left": "0", "x-window-reset": "-3"}, 1.0),
        # ...of the size the API gives, where a rate has it.
        ({"x-window-left": "0", "x-window-size": "100"}, 60.0),
        ({"x-window-left": "0", "x-window-size": "7"}, 1.0),
        # A reset as a moment (epoch seconds), or as a wait with a fraction.
        ({"x-window-left": "0", "x-window-reset": "1795953620"}, 20.0),
        ({"x-window-left": "0", "x-window-reset": "2.5"}, 2.5),
        # Less than nothing left is nothing left.
        ({"x-window-left": "-1", "x-window-reset": "3"}, 3.0),
    ],
)
def test_how_long_the_hold_lasts(
    stack: Callable[..., Harness],
    router: respx.Router,
    sleeps: list[float],
    headers: dict[str, str],
    wait: float,
) -> None:
    """The reset the API gives (seconds, or epoch seconds), else the window of the
    profile's rate of the size it gives, else of its shortest rate."""
    assert time.time() == 1795953600  # START, which the epoch reset above counts from
    router.get(f"{BASE}/odds").respond(200, json={}, headers=headers)
    fresh, _ = sent_at(router, "/fresh")
    rates = (Rate(100, per=60.0), Rate(5, per=1.0))
    client = stack(profiles=windowed(rates=rates, max_wait={"critical": 120}))
    client.get(f"{BASE}/odds")

    client.get(f"{BASE}/fresh", extensions={"priority": "critical"})

    assert sleeps == [pytest.approx(wait)]
    assert fresh.call_count == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-window-left": "3", "x-window-reset": "30"},
        {"x-window-left": "1"},
        {"x-window-left": "none", "x-window-reset": "30"},
        {"x-window-left": "nan"},
        {"x-window-left": "", "x-window-reset": ""},
        # A moment already past: the window has started again.
        {"x-window-left": "0", "x-window-reset": "1795953000"},
        {"x-window-left": "0", "x-window-reset": "0"},
    ],
)
def test_room_left_or_unreadable_headers_change_nothing(
    stack: Callable[..., Harness],
    router: respx.Router,
    sleeps: list[float],
    headers: dict[str, str],
) -> None:
    """Room left, a window already reset, or headers that say nothing readable: the
    next request goes upstream at once, even a LOW one."""
    router.get(f"{BASE}/odds").respond(200, json={}, headers=headers)
    fresh, _ = sent_at(router, "/fresh")
    client = stack(profiles=windowed())
    client.get(f"{BASE}/odds")

    response = client.get(f"{BASE}/fresh", extensions={"priority": "low"})

    assert response.status_code == 200
    assert (fresh.call_count, sleeps) == (1, [])


def test_without_a_reader_the_headers_are_not_read(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """read_window defaults to None: the rates alone decide."""
    router.get(f"{BASE}/odds").respond(
        200, json={}, headers={"x-window-left": "0", "x-window-reset": "30"}
    )
    fresh, _ = sent_at(router, "/fresh")
    client = stack()
    client.get(f"{BASE}/odds")

    assert client.get(f"{BASE}/fresh", extensions={"priority": "low"}).status_code == 200
    assert (fresh.call_count, sleeps) == (1, [])


def _explodes(response: httpx.Response) -> WindowReading:
    raise RuntimeError("boom")


@pytest.mark.parametrize("reader", [_explodes, lambda response: {"remaining": 0}])
def test_a_failing_reader_is_logged_and_ignored(
    stack: Callable[..., Harness],
    router: respx.Router,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
    reader: Callable[[httpx.Response], Any],
) -> None:
    """A reader that raises (logged) or returns something else changes nothing: the
    answer is delivered, the next request goes at once."""
    router.get(f"{BASE}/odds").respond(200, json={"v": 1})
    fresh, _ = sent_at(router, "/fresh")
    client = stack(profiles=[api_profile(read_window=reader)])

    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        assert client.get(f"{BASE}/odds").json() == {"v": 1}
    assert client.get(f"{BASE}/fresh", extensions={"priority": "low"}).status_code == 200
    assert (fresh.call_count, sleeps) == (1, [])
    if reader is _explodes:
        assert "read_window() failed" in caplog.text


def test_read_window_is_validated() -> None:
    """Not a callable: ConfigError naming the field."""
    with pytest.raises(ConfigError, match=r"ApiProfile\.read_window"):
        api_profile(read_window="x-ratelimit-remaining")
    assert api_profile().read_window is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-window-left": "0", "x-window-reset": "30", "x-window-size": "10"}, (0, 30.0, 10)),
        ({"x-window-left": " 4 ", "x-window-reset": "1.5"}, (4, 1.5, None)),
        ({"x-window-left": "many", "x-window-reset": "-1", "x-window-size": "1e400"}, None),
        ({"x-window-reset": "inf"}, None),
        ({"x-window-reset": "nan"}, None),
        ({}, None),
    ],
)
def test_window_headers_read_numbers_and_nothing_else(
    headers: dict[str, str], expected: tuple[int | None, float | None, int | None] | None
) -> None:
    """Readable numbers are read; anything else (a negative reset too) is unknown."""
    reading = READER(httpx.Response(200, headers=headers))
    assert reading == (WindowReading(*expected) if expected else WindowReading())


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("reading", "hold"),
    [
        (WindowReading(), 0.0),
        (WindowReading(remaining=1, reset=30), 0.0),
        (WindowReading(remaining=0, reset=30), 30.0),
        (WindowReading(remaining=0, reset=NOW + 12), 12.0),
        (WindowReading(remaining=0, reset=NOW - 12), 0.0),
        (WindowReading(remaining=0, reset=10**7), 86400.0),  # capped, like Retry-After
        (WindowReading(remaining=0), 1.0),
        (WindowReading(remaining=0, limit=100), 60.0),
        (WindowReading(remaining=0, reset=float("nan")), 1.0),
        (WindowReading(remaining=True, reset=30), 0.0),  # type: ignore[arg-type]
        (WindowReading(remaining="0", reset=30), 0.0),  # type: ignore[arg-type]
    ],
)
def test_window_hold(reading: WindowReading, hold: float) -> None:
    """The pure decision: seconds to hold off for what a reading says."""
    profile = api_profile(rates=(Rate(100, per=60.0), Rate(5, per=1.0)))
    assert window_hold(profile, reading, NOW) == pytest.approx(hold)


def test_window_hold_without_rates_or_reset_is_none() -> None:
    """Nothing says how long the window lasts: no hold."""
    assert window_hold(api_profile(rates=()), WindowReading(remaining=0), NOW) == 0.0
