"""A circuit breaker per profile. Strictly private.

After ``threshold`` upstream failures in a row (network errors, timeouts, 5xx, 429)
the circuit opens: for ``cooldown`` seconds nothing is sent and requests are answered
stale (or refused with CircuitOpen). Then a single probe is let through; its success
closes the circuit, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .exceptions import CircuitOpen


class Breaker:
    def __init__(
        self,
        profile: str,
        threshold: int,
        cooldown: float,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.profile = profile
        self._on_change = on_change
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return "closed" if self.open_until is None else "open"

    def allow(self, now: float) -> bool:
        """Let a request through; True if it is the probe. Raises CircuitOpen if not."""
        if self.threshold <= 0 or self.open_until is None:
            return False
        with self._lock:
            if self.open_until is None:
                return False
            if now < self.open_until or self._probing:
                wait = max(self.open_until - now, 0.0)
                raise CircuitOpen(
                    f"{self.profile}: circuit open after {self.failures} failures in a row; "
                    f"next probe in {wait:.1f}s",
                    profile=self.profile,
                    retry_after=wait,
                )
            self._probing = True
            return True

    def record(self, ok: bool, now: float) -> None:
        """What the upstream call did."""
        if self.threshold <= 0:
            return
        with self._lock:
            was = self.state
            if ok:
                self.failures, self.open_until, self._probing = 0, None, False
            else:
                self.failures += 1
                if self._probing or self.failures >= self.threshold:
                    self.open_until, self._probing = now + self.cooldown, False
            now_state = self.state
        if now_state != was and self._on_change is not None:
            self._on_change(now_state)

    def forget_probe(self) -> None:
        """The probe never reached upstream (refused first): let another one try."""
        with self._lock:
            self._probing = False
