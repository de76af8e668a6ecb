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
    rows = json.loads(out.read_text())["us_per_request"]
    assert {"httpx (floor)", "quotaflow hit", "quotaflow hit async"} <= set(rows)
    assert "quotaflow hit / hishel hit" in capsys.readouterr().out
