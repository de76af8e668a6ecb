from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator

from .exceptions import ConfigError

__all__ = ["Priority", "priority"]


class Priority(enum.StrEnum):
    """How important a request is.

    Priority decides which reserve of the quota a request may spend into, how long
    it may wait for the short-window limiter, and so whether it is answered stale
    under quota pressure. Compares equal to its lower-case name.

    .. versionadded:: 0.1
    """

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @classmethod
    def parse(cls, value: object, *, field: str = "priority") -> Priority:
        """Return the priority named by ``value`` (a :class:`Priority` or its name).

        Raises:
            ConfigError: ``value`` names no priority.
        """
        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        names = ", ".join(repr(p.value) for p in cls)
        raise ConfigError(f"{field}: {value!r} is not a priority (one of {names})")


_current: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "quotaflow_priority", default=Priority.NORMAL
)


@contextlib.contextmanager
def priority(level: Priority | str) -> Iterator[Priority]:
    """Give every request made inside the block this priority.

    A request's own ``extensions={"priority": ...}`` still wins. Works for threads
    and asyncio tasks alike (it is a :mod:`contextvars` variable).

    Args:
        level: a :class:`Priority` or its name, e.g. ``"critical"``.

    Raises:
        ConfigError: ``level`` names no priority.

    .. versionadded:: 0.1
    """
    token = _current.set(Priority.parse(level))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def current_priority() -> Priority:
    return _current.get()
