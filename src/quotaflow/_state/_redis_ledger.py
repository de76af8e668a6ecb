"""The ledger in Redis: two hashes per account, changed in WATCH/MULTI/EXEC
transactions (the rules are ``_books``'s). Strictly private."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import attrs
import redis
from redis.typing import EncodableT

from ..exceptions import StateUnavailable
from ._backend import LeaseHeld, Leases, LeaseStep
from ._board import Board
from ._books import Books
from ._journal import REPLAYED_KEEP, Journal
from ._ledger import Also, Ledger, Unreachable
from ._pyrate import StateStore
from ._redis_guard import Guard
from ._trust import Row

T = TypeVar("T")
MAX_TRIES = 50  # optimistic transaction attempts before giving up
# The row's field marking it re-seeded after Redis lost it (see ``Ledger._seed``).
SEEDED = "seeded"


# The books in one round trip: the row's hash, the reservations' hash, whether a
# journal entry was recorded (a third key, for a replay: ARGV[1] is 1) and who holds a
# single-flight lease (the last key: ARGV[2] is 1; ``_leasing``).
_READ = """
local out = {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), 0, false}
local at = 3
if ARGV[1] == '1' then
    out[3] = redis.call('EXISTS', KEYS[3])
    at = 4
end
if ARGV[2] == '1' then out[4] = redis.call('GET', KEYS[at]) end
return out
"""


def _pairs(flat: list[bytes | str]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _read(
    pipe: redis.client.Pipeline, keys: list[str], once: bool, lease: bool
) -> tuple[dict[str, str], dict[str, str], bool, str | None]:
    """The row, the reservations, whether the entry was replayed and the lease's holder,
    as WATCHed."""
    row, inflight, replayed, holder = pipe.eval(_READ, len(keys), *keys, int(once), int(lease))
    return _pairs(row), _pairs(inflight), bool(replayed), None if holder is None else _text(holder)


def _lease(pipe: redis.client.Pipeline, key: str, step: LeaseStep, holder: str | None) -> None:
    """The lease's part of a transaction, queued in its MULTI: taken (renewed if its
    token holds it), or landed while its token still holds it."""
    ms = max(1, round(step.seconds * 1000))
    if step.take:
        pipe.set(key, step.token, px=ms)
    elif holder == step.token:
        pipe.pexpire(key, ms)


def _execute(pipe: redis.client.Pipeline, then: Callable[[Any], None] | None) -> None:
    """EXEC; with a command of another's queued last (``then`` reads its reply), an
    error of that command (a script Redis no longer knows) leaves it unread and the
    ledger's changes stand."""
    if then is None:
        pipe.execute()
        return
    *own, theirs = pipe.execute(raise_on_error=False)
    for reply in own:
        if isinstance(reply, Exception):
            raise reply
    if not isinstance(theirs, Exception):
        then(theirs)


def _queue_books(
    pipe: redis.client.Pipeline,
    quota: str,
    inflight: str,
    books: Books,
    old_row: dict[str, str],
    old_inflight: dict[str, str],
    was_seeded: bool,
) -> None:
    """The books' changes, queued in a transaction's MULTI: only what changed (an empty
    EXEC still proves the reads were current)."""
    row = _encode(books.row)
    tickets = {k: f"{c}:{s!r}" for k, (c, s) in books.inflight.items()}
    if changed := _changes(row, old_row):
        pipe.hset(quota, mapping=changed)
    if dropped := old_row.keys() - row.keys():
        pipe.hdel(quota, *dropped)
    if added := _changes(tickets, old_inflight):
        pipe.hset(inflight, mapping=added)
    if gone := old_inflight.keys() - tickets.keys():
        pipe.hdel(inflight, *gone)
    if books.seeded != was_seeded:  # a field of the row's hash, _decode skips it
        if books.seeded:
            pipe.hset(quota, SEEDED, "1")
        else:
            pipe.hdel(quota, SEEDED)


def _unreachable(local: object) -> NoReturn:
    raise Unreachable("redis unreachable")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(row: Row | None) -> dict[str, str]:
    # repr: a float survives the round trip exactly. An unknown ``used`` is no field.
    fields = attrs.asdict(row) if row is not None else {}
    return {name: repr(value) for name, value in fields.items() if value is not None}


def _decode(raw: Mapping[str, str]) -> Row | None:
    try:
        used = None if raw.get("used") is None else int(raw["used"])
        return Row(float(raw["period"]), int(raw["total"]), int(raw["remaining"]), used)
    except (KeyError, ValueError):  # missing, or not ours: start over
        return None


def _changes(new: dict[str, str], old: Mapping[str, str]) -> dict[EncodableT, EncodableT]:
    return {k: v for k, v in new.items() if old.get(k) != v}


def _reservations(raw: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for key, value in raw.items():
        cost, _, started = value.partition(":")
        with contextlib.suppress(ValueError):  # unreadable: dropped at the next write
            found[key] = (int(cost), float(started))
    return found


class RedisLedger(Ledger):
    """The ledger in two hashes per profile, changed in WATCH/MULTI/EXEC transactions."""

    def __init__(
        self, client: redis.Redis, prefix: str, guard: Guard, journal: Journal | None = None
    ) -> None:
        super().__init__(journal)
        self._client, self._prefix, self._guard = client, prefix, guard
        # A lost ledger (Redis emptied: restarted without persistence, flushed): this
        # machine saw rows under the prefix (a marker file in the local state directory)
        # and Redis no longer has the key every row's creation sets. Then an account
        # without a row is unknown, never whole (``Books.lost``).
        self._present = f"{prefix}:ledger"
        safe = "".join(c if c.isalnum() else "_" for c in prefix)
        self._marker = guard.directory / f"redis-{safe}.ledger-seen"
        self._marked = self._marker.exists()

    def _lost(self, client: Any) -> bool:
        return self._marked and not client.exists(self._present)

    def lost(self) -> bool:
        return bool(self._guard.run(lambda: self._lost(self._client), lambda local: False))

    def _mark(self) -> None:
        """A row was made: note on this machine that the prefix holds a ledger."""
        if not self._marked:
            with contextlib.suppress(OSError):
                self._marker.touch()
            self._marked = True

    def _keys(self, name: str) -> tuple[str, str]:
        return f"{self._prefix}:quota:{name}", f"{self._prefix}:inflight:{name}"

    def _hash(self, client: redis.Redis, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in client.hgetall(key).items()}

    def _peek(self, name: str) -> Row | None:
        return self._guard.run(
            lambda: _decode(self._hash(self._client, self._keys(name)[0])),
            lambda local: local.ledger._peek(name),
        )

    def accounts(self) -> list[str]:
        start = f"{self._prefix}:quota:"
        return self._guard.run(
            lambda: sorted(
                _text(key)[len(start) :] for key in self._client.scan_iter(match=f"{start}*")
            ),
            lambda local: local.ledger.accounts(),
        )

    def _store(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str = "",
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> T:
        return self._guard.run(
            lambda: self._transact(name, change, once, also, lease), _unreachable
        )

    def joint(self, store: StateStore | Leases | Board) -> bool:
        joins = getattr(store, "joins", None)
        return joins is not None and bool(joins(self._client))

    def _fallback(self, name: str, change: Callable[[Books], T]) -> T:
        # Redis is down and fails open: the local state decides (the journal keeps the
        # cost for Redis), or fresh books if there is none.
        local = self._guard.local
        return change(Books(row=None)) if local is None else local.ledger._update(name, change)[0]

    def _transact(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str,
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> T:
        quota, inflight = self._keys(name)
        done = f"{self._prefix}:replayed:{once}"
        leased = f"{self._prefix}:lease:{lease.key}" if lease is not None else ""
        with self._client.pipeline() as pipe:
            for attempt in range(MAX_TRIES):
                try:
                    # WATCH, one script reading it all, EXEC: one is counted by run().
                    self._guard.trips += 2 if attempt == 0 else 3
                    keys = [quota, inflight, *([done] if once else []), *([leased] * bool(lease))]
                    pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    raw_row, old_inflight, replayed, holder = _read(
                        pipe, keys, bool(once), lease is not None
                    )
                    if lease is not None and lease.take and holder not in (None, lease.token):
                        raise LeaseHeld(lease.key)  # nothing reserved: the EXEC never comes
                    old_row = _encode(_decode(raw_row))
                    books = Books(row=_decode(old_row), inflight=_reservations(old_inflight))
                    books.replayed = replayed
                    books.seeded = was_seeded = raw_row.get(SEEDED) == "1"
                    created = books.row is None
                    books.lost = created and self._lost(pipe)
                    result = change(books)
                    created = created and books.row is not None
                    pipe.multi()
                    if lease is not None:
                        _lease(pipe, leased, lease, holder)
                    _queue_books(pipe, quota, inflight, books, old_row, old_inflight, was_seeded)
                    if once and not books.replayed:
                        pipe.set(done, 1, ex=REPLAYED_KEEP)
                    if created:
                        pipe.set(self._present, 1)
                    then = also(pipe) if also is not None else None
                    _execute(pipe, then)
                    if created:
                        self._mark()
                    return result
                except redis.WatchError:
                    # Another writer won: back off a little (jittered) and read again.
                    time.sleep(random.random() * min(0.001 * (attempt + 1), 0.02))
        raise StateUnavailable(f"redis_url {self._guard.url}: {quota} changed {MAX_TRIES} times")
