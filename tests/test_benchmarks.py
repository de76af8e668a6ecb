"""Each benchmark runs once at a tiny size, so it never rots (timings are not checked)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_overhead_benchmark_runs(tmp_path, capsys, monkeypatch) -> None:
    """overhead.py prints every row and writes them as JSON."""
    out = tmp_path / "latest.json"
    monkeypatch.setattr(
        sys, "argv", ["overhead.py", "--requests", "3", "--rounds", "1", "--json", str(out)]
    )
    namespace = runpy.run_path(str(BENCHMARKS / "overhead.py"))

    assert namespace["main"]() == 0
    rows = json.loads(out.read_text())["overhead"]
    assert {"httpx (floor)", "quotaflow hit (hot)", "quotaflow hit (hot) async"} <= set(rows)
    assert rows["httpx (floor)"]["ratio"] == 1.0
    assert "warm hit / hishel hit" in capsys.readouterr().out


def test_concurrency_benchmark_runs(capsys, monkeypatch) -> None:
    """concurrency.py makes one upstream call per URL under load."""
    monkeypatch.setattr(
        sys, "argv", ["concurrency.py", "--workers", "4", "--requests", "5", "--urls", "3"]
    )
    namespace = runpy.run_path(str(BENCHMARKS / "concurrency.py"))

    assert namespace["main"]() == 0
    out = capsys.readouterr().out
    assert "quotaflow / httpx (threads)" in out
    assert out.count("upstream calls 3") == 2
