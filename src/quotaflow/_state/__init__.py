"""All shared state, in one package. Strictly private.

- ``_schema``: the tables (SQLite) and file names; ``_redis``'s docstring: the keys.
- ``_db``: the state file's connection, its busy waits; ``_recovery``: damaged or
  linked files set aside.
- ``_books`` (pure rules: the period, a reading, a refusal, :class:`QuotaSnapshot`) and
  ``_ledger`` (the ledger over a backend's atomic update).
- ``_window`` (the short window's algorithm), ``_gate`` (the shared pause and circuit),
  ``_lua`` (both in Lua for Redis), ``_short`` (a profile's window as the request path
  uses it), ``_breaker``, ``_waitroom`` (+ ``_async_waitroom``, generated ``_sync_waitroom``).
- ``_backend`` (what a backend provides), ``_sqlite`` and ``_redis`` (+ ``_redis_cold``).
- ``_counters``: the status counters.
- ``_pyrate``: the one place pyrate-limiter's internals are touched, checked at import.

Modules are imported by their path (``quotaflow._state._ledger``); this file imports
nothing, so that importing one part never drags in Redis.
"""
