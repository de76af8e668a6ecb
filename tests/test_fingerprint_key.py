"""The state directory's fingerprint key (``_credentials.load_key``): processes that
start together on a new directory all end up with the one key, so they share cache
partitions (a process keyed on its own would never see the others' answers)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from quotaflow import _credentials
from quotaflow._credentials import KEY_FILE, load_key


def _load(directory: str, start: object, found: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    found.put(load_key(Path(directory)))  # type: ignore[attr-defined]


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = 6
    start, found = context.Barrier(workers), context.Queue()
    children = [
        context.Process(target=_load, args=(str(tmp_path), start, found)) for _ in range(workers)
    ]
    for child in children:
        child.start()
    keys = [found.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert len(set(keys)) == 1
    assert (tmp_path / KEY_FILE).read_bytes() == keys[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]  # no drafts left


def test_a_key_linked_first_by_another_process_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between writing its draft and linking it, another process's key appears: that one
    is used, and the draft goes."""
    theirs = b"t" * 32
    link = os.link

    def raced(source: str, target: str) -> None:
        Path(target).write_bytes(theirs)
        link(source, target)

    monkeypatch.setattr(_credentials.os, "link", raced)

    assert load_key(tmp_path) == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]


def test_without_hard_links_the_key_is_made_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(source: str, target: str) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(_credentials.os, "link", refused)

    key = load_key(tmp_path)

    assert load_key(tmp_path) == key == (tmp_path / KEY_FILE).read_bytes()
    assert oct((tmp_path / KEY_FILE).stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]
