"""The one place quotaflow touches pyrate-limiter's internals. Strictly private.

The short window (``_window``) is a pyrate-limiter ``StateAlgorithm`` so that any of its
``StateStore``\\s keeps it atomically, and it reuses pyrate-limiter's GCRA and sliding
log for the arithmetic. Besides the public names, that needs:

- ``GCRA._emission_us(rate)``: the microseconds between two tokens (private, static);
  the Lua twin of the window is handed it as an argument.
- ``GCRA.step`` / ``GCRA.consumed`` and ``SlidingWindowLog.window_start`` /
  ``.retry_after``: public methods, but of classes pyrate-limiter documents as algorithm
  building blocks, not as an API; their exact arithmetic is what parity tests hold the
  Lua to.
- ``pyrate_limiter.abstracts.algorithm.State`` and ``StateAlgorithm`` and
  ``pyrate_limiter.buckets.state_bucket.InMemoryStateStore`` (not re-exported at the top).
- ``RedisStateStore``'s private ``_ttl_for(rates)`` and ``_decision(rates, reply)`` hooks
  (overridden: our script answers more than a failing index and a wait), and its
  ``redis``/``key`` attributes.

All of them are checked once, at import, against the arithmetic quotaflow was written
for (:func:`check`): if a release changes or drops one, building a client raises
:class:`~quotaflow.exceptions.ConfigError` naming pyrate-limiter and the version, instead
of a limiter that silently counts wrong. ``CHECKED`` lists the versions read line by line
(4.5.1 in ``docs``' measurements, 4.6.0 installed here); any other version must pass the
same checks.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable

from pyrate_limiter import GCRA, Decision, RedisStateStore, SlidingWindowLog, StateStore
from pyrate_limiter import Rate as WindowRate
from pyrate_limiter.abstracts.algorithm import State, StateAlgorithm
from pyrate_limiter.buckets.state_bucket import InMemoryStateStore

from ..exceptions import ConfigError

__all__ = [
    "Decision",
    "InMemoryStateStore",
    "RedisStateStore",
    "State",
    "StateAlgorithm",
    "StateStore",
    "WindowRate",
    "check",
    "emission_us",
    "gcra_consumed",
    "gcra_step",
    "log_retry_after",
    "log_window_start",
]

# ``WindowRate`` is pyrate-limiter's ``Rate`` (limit per ``interval`` milliseconds, with a
# burst), renamed so it is never mistaken for quotaflow's public ``Rate`` (per seconds).

CHECKED = ("4.5.1", "4.6.0")
VERSION = importlib.metadata.version("pyrate-limiter")

_GCRA = GCRA()
_LOG = SlidingWindowLog()


def emission_us(rate: WindowRate) -> int:
    """Microseconds between two tokens of ``rate`` (``GCRA._emission_us``)."""
    return int(_GCRA._emission_us(rate))


def gcra_step(rate: WindowRate, tat: int, now: int, weight: int) -> tuple[int, Decision]:
    """One GCRA step for one rate: the new theoretical arrival time and the decision."""
    (new_tat,), decision = _GCRA.step([rate], (tat,), now, weight)
    return int(new_tat), decision


def gcra_consumed(rate: WindowRate, tat: int, now: int) -> int:
    """Tokens of ``rate``'s burst in use at ``now``."""
    return int(_GCRA.consumed([rate], (tat,), now))


def log_window_start(rate: WindowRate, now: int) -> int:
    """The first stamp (inclusive) still inside ``rate``'s sliding window at ``now``."""
    return int(_LOG.window_start(rate, now))


def log_retry_after(rate: WindowRate, now: int, stamp: int) -> int:
    """Milliseconds until the entry stamped ``stamp`` leaves ``rate``'s window."""
    return int(_LOG.retry_after(rate, now, stamp))


def _expect(what: str, found: object, wanted: object) -> str | None:
    return None if found == wanted else f"{what} gave {found!r}, expected {wanted!r}"


def _problems() -> list[str]:
    """What differs from the internals quotaflow was written against (empty: nothing)."""
    rate = WindowRate(10, 1000, 2)
    checks: list[Callable[[], str | None]] = [
        lambda: _expect("GCRA._emission_us(10/1000ms)", emission_us(rate), 100_000),
        lambda: _expect("GCRA.step", gcra_step(rate, 0, 5, 1)[0], 5_000 + 100_000),
        lambda: _expect("GCRA.step refusal", gcra_step(rate, 305_000, 5, 1)[1].allowed, False),
        lambda: _expect("GCRA.consumed", gcra_consumed(rate, 105_000, 5), 1),
        lambda: _expect("SlidingWindowLog.window_start", log_window_start(rate, 5000), 4000),
        lambda: _expect("SlidingWindowLog.retry_after", log_retry_after(rate, 5000, 4500), 501),
    ]
    found = []
    for run in checks:
        try:
            problem = run()
        except Exception as exc:  # an internal that is gone or takes other arguments
            problem = f"{exc.__class__.__name__}: {exc}"
        if problem is not None:
            found.append(problem)
    for owner, name in ((RedisStateStore, "_ttl_for"), (RedisStateStore, "_decision")):
        if not callable(getattr(owner, name, None)):
            found.append(f"{owner.__name__}.{name} is gone")
    params = list(inspect.signature(RedisStateStore.__init__).parameters)
    if params[:3] != ["self", "redis", "key"]:
        found.append(f"RedisStateStore({', '.join(params[1:])}) takes other arguments")
    return found


PROBLEMS = _problems()


def check() -> None:
    """Refuse to build a limiter on a pyrate-limiter whose internals changed.

    Raises:
        ConfigError: one of the internals above is gone or computes otherwise.
    """
    if PROBLEMS:
        raise ConfigError(
            f"rate_limit: pyrate-limiter {VERSION} changed internals quotaflow relies on "
            f"(checked against {', '.join(CHECKED)}): {'; '.join(PROBLEMS)}"
        )
