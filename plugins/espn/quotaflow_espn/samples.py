"""Answers shaped like ESPN's site API, for offline tests and demos.

Only the fields the profile reads are certain (``events[].id``, ``date`` and
``status.type.state``/``completed``); the rest follows ESPN's usual answers and
is there to show that unknown fields are ignored. Builders are deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

__all__ = ["date", "event", "response", "scoreboard", "summary"]

State = Literal["pre", "in", "post"]

_DETAIL = {"pre": "STATUS_SCHEDULED", "in": "STATUS_IN_PROGRESS", "post": "STATUS_FINAL"}


def date(moment: float) -> str:
    """ESPN's event time: ISO 8601 UTC to the minute, with ``Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%MZ")


def event(
    event_id: str,
    start: float,
    state: State,
    *,
    completed: bool | None = None,
    home: str = "Home",
    away: str = "Away",
) -> dict[str, Any]:
    """One item of a scoreboard's ``events``; ``completed`` defaults to ``state == "post"``."""
    done = state == "post" if completed is None else completed
    return {
        "id": event_id,
        "uid": f"s:20~l:28~e:{event_id}",
        "date": date(start),
        "name": f"{away} at {home}",
        "shortName": f"{away[:3].upper()} @ {home[:3].upper()}",
        "status": {
            "clock": 0.0,
            "period": 0 if state == "pre" else 4,
            "type": {
                "id": "1" if state == "pre" else "2" if state == "in" else "3",
                "name": _DETAIL[state],
                "state": state,
                "completed": done,
            },
        },
    }


def scoreboard(events: Sequence[dict[str, Any]]) -> bytes:
    """The body of ``/apis/site/v2/sports/{sport}/{league}/scoreboard``."""
    return json.dumps(
        {"leagues": [{"id": "28", "abbreviation": "NFL"}], "events": list(events)}
    ).encode()


def summary(event_id: str, state: State) -> bytes:
    """A ``/summary?event=`` body reduced to its header's competition status."""
    competition = {"id": event_id, "status": {"type": {"state": state}}}
    return json.dumps({"header": {"id": event_id, "competitions": [competition]}}).encode()


def response(body: bytes) -> httpx.Response:
    """A 200 answer as ESPN sends it: JSON, no rate-limit headers."""
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})
