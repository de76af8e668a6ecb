"""Every Python example in docs/ runs as written (offline: they bring their own mocks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXAMPLES = [
    pytest.param(code, id=f"{path.stem}-{n}")
    for path in sorted(DOCS.glob("*.md"))
    for n, code in enumerate(BLOCK.findall(path.read_text()), start=1)
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path, monkeypatch) -> None:
    """Run one example in an empty directory with its own state."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUOTAFLOW_HOME", str(tmp_path / "state"))
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})


def test_there_are_examples() -> None:
    """The guides do carry runnable examples."""
    assert len(EXAMPLES) >= 8
