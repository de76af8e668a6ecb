"""A circuit breaker per profile, shared by every process on the profile's state.

After ``threshold`` upstream failures in a row (network errors, timeouts, 5xx, 429)
the circuit opens: for ``cooldown`` seconds nothing is sent and requests are answered
stale (or refused with CircuitOpen). Then a single probe is let through; its success
closes the circuit, its failure opens it again for another cool-down.

The state is the profile's *gate* (``_window``), kept with its short window in the
state file or in Redis, so the count, the open circuit and the probe are the same for
every process on that state: failures in a row are counted over all of them, one
opening stops them all, and one probe at a time goes (taken atomically, with a lease
in case its process dies). A process learns the gate from the limiter's check that
every request makes anyway, so a closed circuit costs no round trip of its own; a
failure costs one, and so does the first success after failures. CircuitChanged fires
in the process whose failure opened the circuit, or whose success closed it.

Strictly private.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..exceptions import CircuitOpen
from ._gate import OPENED, GateOp, GateState
from ._pyrate import InMemoryStateStore
from ._short import ShortWindow

# Seconds a probe may take before another process may probe instead: longer than any
# probe takes (the longest default max wait, 30 s, plus the request itself). A probe
# whose process died delays the next one by at most this much.
PROBE_LEASE = 60.0


class Breaker:
    def __init__(
        self,
        profile: str,
        threshold: int,
        cooldown: float,
        on_change: Callable[[str], None] | None = None,
        window: ShortWindow | None = None,
    ) -> None:
        self.profile = profile
        self._on_change = on_change
        self.threshold = threshold
        self.cooldown = cooldown
        # The store the state is kept in: the profile's window (the limiter attaches
        # it); until then, process memory.
        self.window = window or ShortWindow(None, InMemoryStateStore())

    @property
    def state(self) -> str:
        """As last known in this process."""
        return "open" if self.window.gate.opened else "closed"

    def needs_store(self, now: float) -> bool:
        """Whether :meth:`allow` would ask the store: the circuit may be half-open."""
        opened = self.window.gate.opened
        return self.threshold > 0 and opened > 0 and self.window.open_for(now) <= 0

    def allow(self, now: float) -> int:
        """Let a request through: the probe's token if it is the probe, else 0.

        Raises:
            CircuitOpen: the circuit is open, or half-open with another probe out.
            StateUnavailable: the shared store is unreachable and fails closed.
        """
        gate = self.window.gate
        if self.threshold <= 0 or not gate.opened:
            return 0
        if self.window.open_for(now) > 0:
            raise self._refusal(gate, now)
        verdict = self.window.apply(GateOp.take_probe(math.ceil(PROBE_LEASE * 1000)), now)
        if verdict.granted:
            return verdict.granted
        if not verdict.gate.opened:
            return 0  # closed meanwhile: someone's probe succeeded
        raise self._refusal(verdict.gate, now)

    def _refusal(self, gate: GateState, now: float) -> CircuitOpen:
        wait = self.window.open_for(now)  # the gate is the one the window last learnt
        return CircuitOpen(
            f"{self.profile}: circuit open after {gate.failures} failures in a row; "
            f"next probe in {wait:.1f}s",
            profile=self.profile,
            retry_after=wait,
        )

    def record(self, ok: bool, now: float, probe: int = 0) -> None:
        """What the upstream call did (``probe``: the token :meth:`allow` gave, or 0).

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed.
        """
        if self.threshold <= 0:
            return
        if ok:
            gate = self.window.gate
            if not (probe or gate.failures or gate.opened):
                return  # nothing to reset, as far as the last check knew
            operation = GateOp.succeed()
        else:
            cooldown = math.ceil(self.cooldown * 1000)
            operation = GateOp.fail(self.threshold, cooldown, probe)
        changed = self.window.apply(operation, now).changed
        if changed and self._on_change is not None:
            self._on_change("open" if changed == OPENED else "closed")

    def forget_probe(self, probe: int, now: float) -> None:
        """The probe never reached upstream (refused first): let another one try.

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed.
        """
        if probe:
            self.window.apply(GateOp.forget(probe), now)
