"""quotaflow's pytest plugin (the ``pytest11`` entry point ``quotaflow``).

Loading it imports neither respx nor quotaflow's client: that happens only when a test
uses the fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .._profiles import ApiProfile
    from ._session import ReplaySession


@pytest.fixture
def quotaflow_replay(tmp_path: Path) -> Iterator[Callable[..., ReplaySession]]:
    """Replay a cassette in a test: ``quotaflow_replay(path, profiles=None)`` returns a
    :class:`quotaflow.testing.ReplaySession` whose clients keep their state in the
    test's ``tmp_path``; ``.spent`` is what the emulated API charged.

    .. versionadded:: 0.2
    """
    from ._session import ReplaySession

    sessions: list[ReplaySession] = []

    def replay(
        cassette: str | os.PathLike[str], *, profiles: Iterable[ApiProfile] | None = None
    ) -> ReplaySession:
        state = tmp_path / f"quotaflow-replay-{len(sessions)}"
        session = ReplaySession(cassette, state, profiles=profiles)
        sessions.append(session)
        return session

    yield replay
    for session in sessions:
        session.close()
