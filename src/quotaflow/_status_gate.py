"""The gate in the status: the circuit breaker and the API's pause every process on the
state goes by, as status fields and as the words ``status`` and the dashboard print.
Strictly private."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._state._gate import GateState

if TYPE_CHECKING:
    from ._status import ProfileStatus

__all__ = ["circuit_text", "gate_fields", "pause_text"]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _until(ms: int) -> str | None:
    # Rounded up to the second: "until" never reads earlier than the store's time.
    return _iso(math.ceil(ms / 1000))


def gate_fields(gate: GateState, now: float) -> dict[str, Any]:
    """The status fields for a gate (``_window.gate_of``'s, at ``now``, in seconds).

    ``circuit`` is "closed", "open" (until ``open_until``: nothing is sent) or
    "half-open" (the cool-down is over: one probe may go; ``probe_until`` is set while
    one is out, until its lease ends). ``failures``: upstream failures in a row, every
    process together. ``paused``: the API asked everyone to hold off (429 with
    Retry-After) until ``paused_until``.
    """
    now_ms = now * 1000
    circuit, open_until, open_left, probe_until = "closed", None, None, None
    if gate.opened and now_ms < gate.opened:
        circuit, open_until = "open", _until(gate.opened)
        open_left = round(gate.opened / 1000 - now, 3)
    elif gate.opened:
        circuit = "half-open"
        probe_until = _until(gate.probe) if gate.probe > now_ms else None
    paused = gate.pause > now_ms
    return {
        "circuit": circuit,
        "failures": gate.failures,
        "open_until": open_until,
        "open_seconds_left": open_left,
        "probe_until": probe_until,
        "paused": paused,
        "paused_until": _until(gate.pause) if paused else None,
        "pause_seconds_left": round(gate.pause / 1000 - now, 3) if paused else None,
    }


def _when(iso: str | None, left: float | None) -> str:
    """An ISO time (UTC) and the seconds to it; the time of day alone within a day."""
    if iso is None or left is None:
        return "?"
    return f"{iso[11:] if left < 86400 else iso} ({math.ceil(left)}s left)"


def circuit_text(status: ProfileStatus) -> str:
    """closed / open until T (s left) / half-open[, probe out], failures in a row if any."""
    text = status.circuit
    if status.circuit == "open":
        text = f"open until {_when(status.open_until, status.open_seconds_left)}"
    elif status.probe_until is not None:
        text = f"half-open, probe out until {status.probe_until[11:]}"
    return f"{text}, {status.failures} failed" if status.failures else text


def pause_text(status: ProfileStatus) -> str:
    """no / until T (s left)."""
    if not status.paused:
        return "no"
    return f"until {_when(status.paused_until, status.pause_seconds_left)}"
