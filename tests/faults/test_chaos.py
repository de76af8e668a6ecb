"""A chaos run with small numbers (issue 13, "done when"): 4 worker processes on one
state, SIGKILLed at random and restarted, with a state.db lock held for a while or a
Redis of the run's own frozen (SIGSTOP) and restarted. The ledger never shows less spent
than the stub upstream counted, no request outlives its deadline (its timeout plus the
documented state deadline), no worker sees an undocumented exception.

``tests/faults/chaos_run.py`` is the run itself; call it with larger numbers for a long
run (``python -m tests.faults.chaos_run --help``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chaos_run(tmp_path: Path, *options: str) -> dict[str, Any]:
    out = tmp_path / "summary.json"
    command = [sys.executable, "-m", "tests.faults.chaos_run", "--dir", str(tmp_path / "run")]
    command += ["--out", str(out), "--workers", "4", *options]
    subprocess.run(command, cwd=ROOT, check=True, timeout=300, stderr=subprocess.DEVNULL)
    summary: dict[str, Any] = json.loads(out.read_text())
    return summary


def check_run(summary: dict[str, Any]) -> None:
    """Everything but the ledger: the run did work, nothing undocumented, nothing late
    (wall time less the time the worker was stalled, past the deadline plus SLACK)."""
    assert summary["calls"] > 0, summary["events"]
    assert summary["requests"] > summary["workers"], summary["outcomes"]
    assert summary["unexpected"] == [], "\n".join(summary["unexpected"][:5])
    assert summary["late"] == [], (summary["deadline"], summary["late"][:5], summary["events"])


def test_sigkilled_workers_on_one_state_directory(tmp_path: Path) -> None:
    """SQLite: 4 workers, SIGKILLs at random moments: the ledger >= upstream calls."""
    summary = chaos_run(tmp_path, "--backend", "sqlite", "--seconds", "5", "--kills", "3")
    check_run(summary)
    assert summary["spent"] >= summary["calls"], summary


def test_a_state_lock_held_while_workers_are_killed(tmp_path: Path) -> None:
    """SQLite: another process holds BEGIN EXCLUSIVE on state.db for 2.5 s in the middle
    of the run, workers are SIGKILLed: no request waits past its deadline, none fails,
    and the calls made during the lock reach the ledger (through the journal)."""
    summary = chaos_run(
        tmp_path, "--backend", "sqlite", "--seconds", "6", "--kills", "2", "--lock", "2.5"
    )
    check_run(summary)
    assert summary["spent"] >= summary["calls"], summary


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_frozen_and_restarted_redis(tmp_path: Path) -> None:
    """Redis (the run's own, never the shared one): frozen with SIGSTOP for 2.5 s, later
    SIGKILLed and restarted (its append-only file kept), workers SIGKILLed: no request
    past its deadline, nothing undocumented, the ledger >= upstream calls."""
    summary = chaos_run(
        tmp_path, "--backend", "redis", "--seconds", "8", "--kills", "2", "--freeze", "2.5"
    )
    check_run(summary)
    assert summary["spent"] >= summary["calls"], summary


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_redis_restarted_without_persistence(tmp_path: Path) -> None:
    """Redis without an append-only file, frozen then SIGKILLed and restarted empty, with
    an upstream that reports its usage as a quota API does (``x-requests-used``): no
    request past its deadline, nothing undocumented, and the ledger >= upstream calls:
    the emptied ledger is "unknown" until the next answer, whose reading brings it back
    to the API's own count (issue 14)."""
    summary = chaos_run(
        tmp_path,
        *("--backend", "redis", "--seconds", "14", "--kills", "2", "--freeze", "2"),
        *("--no-persist", "--headers", "x-requests"),
    )
    check_run(summary)
    assert summary["spent"] >= summary["calls"], summary


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_redis_restarted_without_persistence_and_no_quota_headers(tmp_path: Path) -> None:
    """The same with an API that reports no usage: everything but the ledger holds; the
    ledger part is an expected failure with its cause named (docs/reliability.md, "What
    is not covered")."""
    summary = chaos_run(
        tmp_path,
        *("--backend", "redis", "--seconds", "8", "--kills", "2", "--freeze", "2"),
        "--no-persist",
    )
    check_run(summary)
    if summary["spent"] < summary["calls"]:
        # Known cause (issue 13 item 15): with no reading from the API, the emptied store
        # is re-seeded with the row a process stored last, when that process next
        # writes; calls the other processes recorded after that row are lost, and all of
        # them if no process that held a row writes again (it exited or was SIGKILLed).
        pytest.xfail(
            f"{summary['calls'] - summary['spent']} of {summary['calls']} calls lost when "
            "Redis restarted without persistence and the API reports no usage"
        )
