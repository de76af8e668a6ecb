"""Keeping a broken state file from ever breaking a request. Strictly private.

A SQLite file that is truncated, overwritten with garbage, or otherwise not a
database is moved aside (``NAME.corrupt-YYYYmmddTHHMMSS``, with its -wal and -shm)
and rebuilt empty, with one warning naming it. A file that is merely busy (locked by
another process past the busy timeout) or unwritable is left alone: the operation
that met it carries on without it ("fail open" on local state).

State files are private: one quotaflow creates is made 0600 before SQLite opens it
(SQLite gives its -wal and -shm the mode of the database). A state file, -wal or -shm
that is a symbolic link is never followed: the link is moved aside like a corrupt file
(``NAME.symlink-YYYYmmddTHHMMSS``) and a private file is made in its place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

from ..exceptions import ConfigError

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


_SUFFIXES = ("", "-wal", "-shm")


def set_aside(path: Path, why: object, kind: str = "corrupt") -> Path:
    """Move ``path`` (and its WAL files) out of the way; return where it went. A link
    is moved, never what it points to."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.{kind}-{stamp}")
    for suffix in _SUFFIXES:
        source = path.with_name(path.name + suffix)
        if source.is_symlink() or source.exists():
            source.replace(target.with_name(target.name + suffix))
    logger.warning(
        "quotaflow: %s was unusable (%s); moved aside to %s and rebuilt", path, why, target
    )
    return target


def _private(path: Path) -> None:
    """Move links among the files at ``path`` aside; create a missing database 0600.

    Raises:
        OSError: the directory cannot be written.
    """
    for _ in range(2):  # a second pass for a link made between the look and the open
        links = [s for s in _SUFFIXES if path.with_name(path.name + s).is_symlink()]
        if links:
            set_aside(path, f"{path.name}{links[0]} is a symbolic link", kind="symlink")
        try:
            # O_NOFOLLOW and O_EXCL: a link is refused, never followed.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            if not path.is_symlink():
                return  # there already (another process may have just made it)
            continue
        os.close(fd)
        return


def check(path: Path) -> None:
    """Make ``path`` a private regular file and set the database there aside if it is
    corrupt. Never raises, but for a link it could not move aside (never followed)."""
    with contextlib.suppress(OSError):  # unwritable: left to the caller, as before
        _private(path)
    if path.is_symlink():
        raise ConfigError(f"state_dir: {path} is a symbolic link that could not be moved aside")
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
