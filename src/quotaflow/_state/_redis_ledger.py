"""The ledger in Redis: two hashes per account, changed by one script call each (a
compare-and-set on the books last seen, ``_redis_books``; the rules are ``_books``'s).
Strictly private."""

from __future__ import annotations

import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import attrs
import redis

from ..exceptions import StateUnavailable
from ._backend import LeaseHeld, Leases, LeaseStep
from ._board import Board
from ._books import Books
from ._journal import Journal
from ._ledger import Also, Ledger, Unreachable
from ._pyrate import StateStore
from ._redis_books import BOOKS_LUA, Seen, Step, seen_of
from ._redis_guard import Guard
from ._trust import Row

T = TypeVar("T")
MAX_TRIES = 50  # compare-and-set attempts before giving up
# The row's field marking it re-seeded after Redis lost it (see ``Ledger._seed``).
SEEDED = "seeded"


def _changes_of(
    new: dict[str, str], old_ours: Mapping[str, str], old: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The fields to set and to delete to make a hash's fields of ours ``new``
    (``old_ours`` were ours, of all of ``old``: fields not ours are left alone)."""
    return {k: v for k, v in new.items() if old.get(k) != v}, sorted(old_ours.keys() - new.keys())


def _written(old: Mapping[str, str], change: tuple[dict[str, str], list[str]]) -> dict[str, str]:
    put, drop = change
    return {k: v for k, v in {**old, **put}.items() if k not in drop}


def _book_changes(
    books: Books, seen: Seen
) -> tuple[tuple[dict[str, str], list[str]], tuple[dict[str, str], list[str]]]:
    """The books' changes to both hashes: only what changed (a call that writes nothing
    still proves the books were current)."""
    ours = _encode(_decode(seen.row))
    if seen.row.get(SEEDED) == "1":
        ours[SEEDED] = "1"
    row = _encode(books.row)
    if books.seeded:  # a field of the row's hash, _decode skips it
        row[SEEDED] = "1"
    tickets = {k: f"{c}:{s!r}" for k, (c, s) in books.inflight.items()}
    return _changes_of(row, ours, seen.row), _changes_of(tickets, seen.inflight, seen.inflight)


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


def _reservations(raw: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for key, value in raw.items():
        cost, _, started = value.partition(":")
        with contextlib.suppress(ValueError):  # unreadable: dropped at the next write
            found[key] = (int(cost), float(started))
    return found


class RedisLedger(Ledger):
    """The ledger in two hashes per profile, changed by one script call each."""

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
        self._script = client.register_script(BOOKS_LUA)
        # Each account's books as this process last saw them in Redis: what a change is
        # worked out on and sent to be written if Redis still holds them.
        self._seen_books: dict[str, Seen] = {}
        # A writing call's mark (``Step.once_only``): this ledger's own, then a count.
        self._caller, self._calls = f"{uuid.uuid4().hex}:", itertools.count()

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

    def _call(self, step: Step, lease: LeaseStep | None) -> Seen | None:
        """One call of the script: None if it wrote, else what Redis holds.

        Raises:
            LeaseHeld: another process holds ``lease``: nothing was written.
        """
        reply = self._script(keys=step.all_keys(), args=step.arguments())
        kind = _text(reply[0])
        if kind == "held":
            raise LeaseHeld(lease.key if lease is not None else "")
        if kind == "stale":
            return seen_of(reply)
        step.reply = reply[1] if len(reply) > 1 else None
        return None

    def _step(self, name: str, once: str, lease: LeaseStep | None, check: bool = False) -> Step:
        step = Step(*self._keys(name), self._present)
        if once:
            step.once(f"{self._prefix}:replayed:{once}")
        if lease is not None:
            step.lease(f"{self._prefix}:lease:{lease.key}", lease, check)
        return step

    def _transact(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str,
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> T:
        """``change`` on the books as last seen here, written in one script call if
        Redis still holds them (``_redis_books``); else on what Redis answered, again."""
        # A journal entry's mark is not kept here: such a change reads first.
        seen = None if once else self._seen_books.get(name)
        for attempt in range(MAX_TRIES):
            if attempt:  # run() counted the first
                self._guard.trips += 1
            if attempt > 2:  # others keep winning: back off a little (jittered)
                time.sleep(random.random() * min(0.001 * attempt, 0.02))
            if seen is None:  # nothing seen yet: read (and check the lease)
                seen = self._call(self._step(name, once, lease, check=True), lease)
                assert seen is not None  # a call that expects nothing only reads
                continue
            found = self._attempt(name, seen, change, once, also, lease)
            if isinstance(found, Seen):
                seen = found
                continue
            return found[0]
        raise StateUnavailable(f"redis_url {self._guard.url}: {name} changed {MAX_TRIES} times")

    def _attempt(
        self,
        name: str,
        seen: Seen,
        change: Callable[[Books], T],
        once: str,
        also: Also | None,
        lease: LeaseStep | None,
    ) -> tuple[T] | Seen:
        """``change`` on ``seen``, written if Redis still holds it: (its result,), or
        what Redis holds instead."""
        books = Books(row=_decode(seen.row), inflight=_reservations(seen.inflight))
        books.replayed, books.seeded = seen.replayed, seen.row.get(SEEDED) == "1"
        created = books.row is None
        books.lost = created and self._marked and not seen.present
        try:
            result = change(books)
        except LeaseHeld:
            raise
        except Exception:
            # A refusal stands only on the books Redis holds: asked to write nothing
            # (the lease only checked), the script says whether they are still these.
            check = self._step(name, once, lease, check=True)
            check.expect(seen)
            check.write(({}, []), ({}, []))
            check.marks(done=False, present=False)
            if (found := self._call(check, lease)) is not None:
                return found
            raise
        created = created and books.row is not None
        rows, tickets = _book_changes(books, seen)
        step = self._step(name, once, lease)
        step.expect(seen)
        step.write(rows, tickets)
        step.marks(done=bool(once) and not books.replayed, present=created and not seen.present)
        then = also(step) if also is not None else None
        step.once_only(f"{self._prefix}:call:{self._caller}{next(self._calls)}")
        if (found := self._call(step, lease)) is not None:
            self._seen_books.pop(name, None)
            return found
        self._seen_books[name] = Seen(
            _written(seen.row, rows), _written(seen.inflight, tickets), seen.present or created
        )
        if created:
            self._mark()
        if then is not None and step.reply is not None:
            then(step.reply)
        return (result,)
