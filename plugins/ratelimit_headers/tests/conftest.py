"""Fixtures of the rate-limit headers plugin's tests: a fixed clock and a respx router."""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import respx
import time_machine

# Property tests draw the same examples in every run (CI included) and never replay a
# saved example database (.hypothesis/): a failure is one anybody can reproduce.
hypothesis.settings.register_profile("quotaflow", derandomize=True, database=None)
hypothesis.settings.load_profile("quotaflow")

#: 2025-09-04T15:33:20Z: a whole second, so the Date header quotaflow writes is exact.
START = 1_757_000_000


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio only."""
    return "asyncio"


@pytest.fixture
def start() -> float:
    """The moment every integration test begins at, in epoch seconds."""
    return float(START)


@pytest.fixture
def traveller(start: float) -> Iterator[time_machine.Traveller]:
    """Stop time at ``start``; ``traveller.shift(seconds)`` moves it on."""
    with time_machine.travel(start, tick=False) as traveller:
        yield traveller


@pytest.fixture
def router() -> respx.Router:
    """Routes for the mock upstream; ``route.call_count`` counts upstream calls."""
    return respx.Router(assert_all_called=False)
