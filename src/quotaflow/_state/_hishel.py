"""The one place quotaflow relies on hishel beyond its public API, fenced as
``_network.py`` fences httpx's internals. Strictly private.

Checked against hishel 2.0.x (``CHECKED``). What is relied on:

- the layout of :class:`hishel.SqliteStorage`'s table, ``entries (id, expires_at,
  last_accessed_at, ...)``, to add the index its cleanup needs (:func:`index_cache`).
  If a later hishel changes it, creating the index fails and is logged at WARNING: the
  cache still works, only stores get slower as it grows.

Everything else quotaflow uses of hishel is public: the storages and their
``max_stream_size``, ``Entry``/``Request``/``Response``/``Headers``, the
``CacheTransport``s, ``IdleClient`` and ``extensions["caching"]``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import hishel

__all__ = ["CHECKED", "EXPIRY_INDEX", "index_cache"]

logger = logging.getLogger("quotaflow")

# The hishel releases whose internals the code below was checked against
# (``tests/test_retention.py`` fails on any other, so an upgrade is re-checked).
CHECKED = ("2.0.",)

# Before every store, hishel's SqliteStorage deletes what has expired (_reclaim_space):
#   DELETE FROM entries WHERE id IN (SELECT id FROM entries
#     WHERE expires_at < :now AND last_accessed_at < :now - soft_delete_ttl LIMIT 200)
# SQLite plans the inner SELECT on idx_entries_last_accessed_at (EXPLAIN QUERY PLAN). Once
# entries have been idle for the 180 s soft-delete window, as in any cache in use, every
# row is in that range, so each store walked the whole table to test expires_at: 13.7 ms
# per store at 30K entries, growing with the cache. With this covering index on hishel's
# table the planner answers the SELECT from the index alone, visiting only the rows that
# have expired or were removed (0.05 ms at 30K).
EXPIRY_INDEX = "quotaflow_entries_expiry"
_CREATE_EXPIRY_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {EXPIRY_INDEX} ON entries (expires_at, last_accessed_at, id)"
)


def index_cache(path: Path) -> None:
    """Give the hishel cache at ``path`` the index its cleanup needs. Never raises:
    without it the cache still works, only stores get slower as it grows."""
    # hishel creates its tables when it first opens the file; a throwaway storage does
    # that now, so the index exists before the first store of a fresh cache.
    storage = hishel.SqliteStorage(database_path=path)
    try:
        storage.get_entries("")
    except Exception as exc:  # a file hishel refuses: it says so again on first use
        logger.warning("quotaflow: cannot index the cache %s: %s", path, exc)
        return
    finally:
        storage.close()
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as connection:
            connection.execute(_CREATE_EXPIRY_INDEX)
    except sqlite3.Error as exc:
        logger.warning("quotaflow: cannot index the cache %s: %s", path, exc)
