"""What a warm read needs of each stored answer, kept beside hishel's entries in
``cache.db`` and read with them in one query. Part of ``_hishel.py``'s fence (it relies on
the layout of hishel 2.0's tables, ``entries`` and ``streams``; see there). Strictly
private."""

from __future__ import annotations

import json
import uuid

import hishel

from .._hot import HotEntry
from .._shapes import Shape, stored_shape, warm_entry

__all__ = [
    "CREATE_SHAPES",
    "DROP_SHAPE",
    "ENTRY",
    "KEEP_SHAPE",
    "READ_FRESH",
    "SHAPES",
    "TOUCH",
    "Made",
    "answer",
    "shape_row",
]

# Beside each entry a warm read can serve, what was judged of it when it was stored
# (``_shapes.Shape``): written after hishel's insert, while the entry is still hidden (hishel
# shows it once its body is stored), and gone with it (the foreign key: hishel turns
# foreign keys on). The read below joins the entry, so a shape never outlives it.
SHAPES = "quotaflow_shapes"
CREATE_SHAPES = (
    f"CREATE TABLE IF NOT EXISTS {SHAPES} ("
    " entry_id BLOB PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,"
    " cache_key BLOB NOT NULL, url TEXT NOT NULL, length INTEGER NOT NULL,"
    " received REAL NOT NULL, ttl REAL NOT NULL, headers BLOB NOT NULL) WITHOUT ROWID",
    f"CREATE INDEX IF NOT EXISTS {SHAPES}_key ON {SHAPES} (cache_key)",
)
KEEP_SHAPE = (
    f"INSERT OR REPLACE INTO {SHAPES} (entry_id, cache_key, url, length, received, ttl,"
    " headers) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DROP_SHAPE = f"DELETE FROM {SHAPES} WHERE entry_id = ?"
ENTRY = "SELECT cache_key, data FROM entries WHERE id = ?"
# What fresh_stored accepts, in one indexed query (the key's index, then primary keys):
# the only entry hishel would show under the key (visible: expires_at as its
# get_entries reads it), complete, with no idle timeout (hishel would move its expiry
# on reading it), for this URL, fresh (quotaflow's clock), small enough; its body's
# chunks (put in order by answer: an ORDER BY costs a temporary b-tree per read).
READ_FRESH = f"""
SELECT s.entry_id, s.headers, s.received, s.ttl, e.last_accessed_at, e.chunk_count,
       c.chunk_number, c.chunk_data
FROM {SHAPES} AS s
JOIN entries AS e ON e.id = s.entry_id
LEFT JOIN streams AS c ON c.entry_id = s.entry_id
WHERE s.cache_key = :key AND s.url = :url AND s.length <= :limit
  AND s.received + s.ttl > :now
  AND (e.expires_at IS NULL OR e.expires_at > :wall) AND e.chunk_count IS NOT NULL
  AND e.tti IS NULL
  AND (SELECT COUNT(*) FROM entries WHERE cache_key = :key
       AND (expires_at IS NULL OR expires_at > :wall)) = 1"""
TOUCH = (
    "UPDATE entries SET last_accessed_at = ?"
    " WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)"
)


def shape_row(
    id: uuid.UUID, key: str, request: hishel.Request, response: hishel.Response
) -> tuple[object, ...] | None:
    shape: Shape | None = stored_shape(request.method, response.status_code, response.headers)
    if shape is None:
        return None
    # As JSON text (the bytes as sent, as latin-1 text, ``_raw``): parsed only on an
    # entry's first read (see answer).
    text = json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in shape.headers])
    headers = text.encode()
    return (id.bytes, key.encode(), request.url, shape.length, shape.received, shape.ttl, headers)


Row = tuple[bytes, bytes, float, float, float, int, int | None, bytes | None]
# Per entry read lately: its headers as stored, and an entry made of them (no body kept)
# whose memo of parsed headers the next reads of the same answer share.
Made = dict[bytes, tuple[bytes, int, HotEntry]]
MADE_MAX = 256  # entries remembered so, at most (about 1 KB each)


def _pairs(texts: list[list[str]]) -> list[tuple[bytes, bytes]]:
    try:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in texts]
    except UnicodeEncodeError:  # a shape kept before the bytes were (UTF-8 text)
        return [(k.encode(), v.encode()) for k, v in texts]


def answer(rows: list[Row], made: Made) -> tuple[HotEntry | None, bytes, float]:
    """The hot entry a fresh read found (None: not one), with its id and last use."""
    if not rows:
        return None, b"", 0.0
    entry_id, headers, received, ttl, used, chunks, _, first = rows[0]
    if chunks != len(rows) and not (chunks == 0 and first is None):  # None: no chunk
        return None, entry_id, used  # being removed meanwhile: hishel's to answer
    if chunks > 1:
        body = b"".join(row[7] or b"" for row in sorted(rows, key=lambda row: row[6] or 0))
    else:
        body = first or b""
    known = made.get(entry_id)
    if known is not None and known[0] == headers and known[1] == len(body):
        return known[2].carrying(body), entry_id, used
    pairs = _pairs(json.loads(headers))
    entry = warm_entry(pairs, body, received, ttl)
    if len(made) >= MADE_MAX:
        made.clear()
    made[entry_id] = (headers, len(body), entry.carrying(b""))
    return entry, entry_id, used
