"""The single-flight lease in the rate-limit layer's round trips (issue 16): a leader's
lease (``Route.lease``, asked for by the caching layer) is taken in its reservation's
transaction and landed in its settle's, so a miss costs one round trip to the state
before the upstream call and one after, lease included. Strictly private.

*Landed*: the lease is not released when the answer comes (hishel has not stored the
body yet, and the other processes wait for it in storage) but set to lapse
``FOLLOW_BODY`` seconds later, as long as a follower in the leader's own process waits
for a streaming answer (``_flight.given_up``). Once the answer is stored nothing more is
written: the other processes' waiters find it in storage (or see the lease lapse). An
answer that will not be stored, a failure and an error give the lease back as before.
On Redis the same, in the ledger's script calls (``_redis_books``): a landed lease names
when it lapses on the settle's clock, and Redis expires it by then on its own.
"""

from __future__ import annotations

from .._info import Lease
from ._backend import LeaseHeld, Leases, LeaseStep
from ._ledger import Ledger

__all__ = ["FOLLOW_BODY", "LEASE_TTL", "Leasing"]

# How long a lease is held at most: a leader that died lets go after this.
LEASE_TTL = 30.0
# How long a follower waits for a leader whose answer is streaming to its caller: a
# leader that reads slowly, never reads, or streams a feed must not hold the others up
# (they then fetch for themselves, as they would without quotaflow). A landed lease
# lapses this long after the answer came.
FOLLOW_BODY = 1.0


class Leasing:
    """Takes and lands leases for the rate-limit layer, in the ledger's transactions
    where the backend can (SQLite, Redis), else in round trips of their own."""

    def __init__(self, leases: Leases, ledger: Ledger) -> None:
        self.leases = leases
        self.joint = ledger.joint(leases)

    def first(self, lease: Lease, now: float) -> LeaseStep | None:
        """``lease`` to take first in a reservation's transaction (None: the backend
        cannot; :meth:`take` then)."""
        if not self.joint:
            return None
        return LeaseStep(lease.key, lease.token, LEASE_TTL, now, take=True)

    def take(self, lease: Lease, now: float) -> None:
        """Take ``lease`` in a round trip of its own.

        Raises:
            LeaseHeld: another process holds it.
        """
        if self.leases.acquire(lease.key, LEASE_TTL, now, lease.token) is None:
            raise LeaseHeld(lease.key)

    def land(self, lease: Lease, now: float) -> LeaseStep | None:
        """``lease`` to land in a settle's transaction (None: the backend cannot; the
        caching layer then releases it once the answer is stored, as before)."""
        if not (self.joint and self.leases.lands):
            return None
        return LeaseStep(lease.key, lease.token, FOLLOW_BODY, now, take=False)
