"""What the benchmarks share: ratio statistics, results file, verdict lines."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"


def ratios(values: Sequence[float], bases: Sequence[float]) -> dict[str, float]:
    """Median and spread (min-max) of per-round ratios ``values[i] / bases[i]``."""
    found = [value / base for value, base in zip(values, bases, strict=True) if base > 0]
    if not found:
        return {"ratio": float("nan"), "ratio_min": float("nan"), "ratio_max": float("nan")}
    return {"ratio": statistics.median(found), "ratio_min": min(found), "ratio_max": max(found)}


def spread(row: dict[str, float]) -> str:
    return f"{row['ratio']:.2f} [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def write_results(path: Path | None, section: str, data: Any) -> None:
    """Merge ``{section: data}`` into the JSON file at ``path`` (None: do nothing)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        found = json.loads(path.read_text())
        if not isinstance(found, dict):
            found = {}
    except (OSError, ValueError):
        found = {}
    found[section] = data
    path.write_text(json.dumps(found, indent=2, sort_keys=True, default=str) + "\n")


def json_arg(value: str) -> Path | None:
    """``--json PATH``; ``--json -`` writes nothing."""
    return None if value == "-" else Path(value)
