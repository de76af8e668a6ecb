"""The schema of all shared state, in one place. Strictly private.

SQLite (``state.db`` in the state directory; ``cache.db`` is hishel's, ``cold.db`` the
cold store's)::

    quota           the ledger: one row per profile (or profile#credential) and period
    inflight        reservations of requests in flight (charged in full if abandoned)
    replayed        the ids of journal entries recorded (each is counted once), 40 days
    leases          single-flight leases, each naming the process holding it
    limiter         the short windows' and gates' states (see ``_window``, ``_gate``)
    counters        per day and profile: how requests were answered (``_counters``)
    hourly          per UTC hour, profile, and priority or endpoint (``_tallies``)
    profile_status  per profile: the last error and circuit change seen here
    waiting         requests waiting for a short window, by priority (``_board``)

The journal (``journal``, see ``_journal``) is a file of its own, 0600: it is written
when the state file (or Redis) cannot be.

Redis (``_redis``): the same under a prefix; see that module's docstring for the keys.
"""

from __future__ import annotations

CACHE_FILE = "cache.db"
STATE_FILE = "state.db"
# Upstream calls the ledger could not record yet (``_journal``), next to the state file.
JOURNAL_FILE = "journal"

SCHEMA = """
CREATE TABLE IF NOT EXISTS lost (
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quota (
    profile TEXT PRIMARY KEY,
    period REAL NOT NULL,
    total INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    used INTEGER
);
CREATE TABLE IF NOT EXISTS inflight (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    cost INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inflight_profile ON inflight (profile);
CREATE TABLE IF NOT EXISTS replayed (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS limiter (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    day TEXT NOT NULL,
    profile TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    revalidated INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    saved INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, profile)
);
CREATE TABLE IF NOT EXISTS hourly (
    hour TEXT NOT NULL,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    revalidated INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    saved INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, profile, kind, name)
);
CREATE TABLE IF NOT EXISTS waiting (
    token TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    rank INTEGER NOT NULL,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_status (
    profile TEXT PRIMARY KEY,
    last_error TEXT,
    last_error_at REAL,
    circuit TEXT,
    circuit_at REAL
);
"""
