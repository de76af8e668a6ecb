"""Keeping a broken state file from ever breaking a request. Strictly private.

A SQLite file that is truncated, overwritten with garbage, or otherwise not a
database is moved aside (``NAME.corrupt-YYYYmmddTHHMMSS``, with its -wal and -shm)
and rebuilt empty, with one warning naming it. A file that is merely busy (locked by
another process past the busy timeout) or unwritable is left alone: the operation
that met it carries on without it ("fail open" on local state).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

logger = logging.getLogger("quotaflow")

# Files larger than this are only probed cheaply at start-up, not checked page by page.
FULL_CHECK_LIMIT = 256 * 2**20
_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


def is_corruption(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.split("_(", 1)[0] in _CORRUPT or name.startswith(
            ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        )
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def set_aside(path: Path, why: object) -> Path:
    """Move ``path`` (and its WAL files) out of the way; return where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.replace(target.with_name(target.name + suffix))
    logger.warning(
        "quotaflow: %s was unusable (%s); moved aside to %s and rebuilt", path, why, target
    )
    return target


def check(path: Path) -> None:
    """Set the database at ``path`` aside if it is corrupt. Never raises."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return  # cannot even open it read-only: leave it to the caller's own handling
    try:
        connection.execute("SELECT name FROM sqlite_master").fetchall()
        if path.stat().st_size <= FULL_CHECK_LIMIT:
            verdict = connection.execute("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                raise sqlite3.DatabaseError(
                    f"quick_check: {verdict[0] if verdict else 'no answer'}"
                )
    except sqlite3.DatabaseError as exc:
        if not is_corruption(exc) and not str(exc).startswith("quick_check"):
            return
        connection.close()
        try:
            set_aside(path, exc)
        except OSError:
            logger.warning(
                "quotaflow: %s is corrupt and could not be moved aside", path, exc_info=True
            )
        return
    finally:
        connection.close()
