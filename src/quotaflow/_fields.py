"""Field converters and validators of the profile classes; durations and hosts.
Strictly private."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, cast

import attrs
import httpx

from ._defaults import DEFAULT_MAX_WAIT, DEFAULT_RESERVES, Verdict
from ._priority import Priority
from .exceptions import ConfigError


def _checked(*validators: Any) -> Any:
    """Run attrs validators, turning their errors into a ConfigError naming the field."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, _Malformed):  # a converter could not read it
            owner = type(instance).__name__
            raise ConfigError(f"{owner}.{attribute.name}: {value.message}")
        for validator in validators:
            try:
                validator(instance, attribute, value)
            except ConfigError:
                raise
            except (TypeError, ValueError) as exc:
                owner = type(instance).__name__
                raise ConfigError(f"{owner}.{attribute.name}: {exc.args[0]}") from None

    return validate


_DURATION = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,15})?)\s*([smhd]?)\s*", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from a duration: a number of seconds (``30``, ``0.5``) or a string with
    a unit, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` (a bare ``"90"`` is seconds too).

    Every duration quotaflow takes (in code, ``quotaflow.toml`` or the environment)
    is read by this one function.

    Raises:
        ValueError: not a duration, negative or not finite (``"30x"``, ``-5``,
            ``"thirty"``, ``True``).

    .. versionadded:: 0.2
    """
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value)) is not None:
        seconds = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            "expected a duration: seconds (>= 0) or a string such as '30s', '5m', '1h' "
            f"or '1d', not {value!r}"
        )
    return seconds


@attrs.frozen
class _Malformed:
    """A value a converter could not read, until the field's validator (every one is
    wrapped by :func:`_checked`) names the field in the error: a converter is not
    told its field. Strictly private."""

    message: str


def duration(value: float | str) -> float:
    """The attrs converter of every duration field: seconds (see :func:`parse_duration`).

    A malformed value is refused by the field's validator (:func:`_checked`), which
    names the field.
    """
    try:
        return parse_duration(value)
    except ValueError as exc:
        return cast(float, _Malformed(exc.args[0]))


def optional_duration(value: float | str | None) -> float | None:
    """:func:`duration`, None kept."""
    return None if value is None else duration(value)


def _within_limit(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    # More at once than in a whole window could never be spent: say so.
    if value is not None and value > instance.limit:
        raise ValueError(f"must be at most the limit ({instance.limit}), not {value!r}")


def _finite(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {value!r}")


def _priority_map(
    value: Any, defaults: Mapping[Priority, float], field: str, durations: bool = False
) -> dict[Priority, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"ApiProfile.{field}: expected a mapping of priority to number, not {value!r}"
        )
    merged = dict(defaults)
    for key, number in value.items():
        priority = Priority.parse(key, field=f"ApiProfile.{field}")
        if durations:
            try:
                number = parse_duration(number)
            except ValueError as exc:
                raise ConfigError(f"ApiProfile.{field}: {priority}: {exc.args[0]}") from None
        merged[priority] = number
    return merged


def _reserves(value: Any) -> dict[Priority, float]:
    return _priority_map(value, DEFAULT_RESERVES, "reserves")


def _max_wait(value: Any) -> dict[Priority, float]:
    return _priority_map(value, DEFAULT_MAX_WAIT, "max_wait", durations=True)


class StaleLimits(float):
    """``ApiProfile.max_stale`` given per priority. As a number it is the longest limit
    (how long stored answers are kept); :meth:`ApiProfile.stale_limit` gives each
    priority's own. Strictly private: build it by passing a mapping to ``max_stale``."""

    by_priority: Mapping[Priority, float]

    def __new__(cls, limits: Mapping[Priority, float]) -> StaleLimits:
        self = super().__new__(cls, max(limits.values()))
        self.by_priority = dict(limits)
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StaleLimits):
            return self.by_priority == other.by_priority
        if isinstance(other, int | float):  # a plain number: the same limit for all
            return all(limit == other for limit in self.by_priority.values())
        return NotImplemented

    def __reduce__(self) -> tuple[type[StaleLimits], tuple[dict[Priority, float]]]:
        # Pickled (and copied) by its limits: __new__ takes them, not a number.
        return (StaleLimits, (dict(self.by_priority),))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        limits = tuple(self.by_priority[p] for p in Priority)
        # Equal to a plain number when every limit is that number: hashed alike then.
        return hash(limits[0]) if len(set(limits)) == 1 else hash(limits)

    def __repr__(self) -> str:
        limits = ", ".join(f"{p.value!r}: {v!r}" for p, v in self.by_priority.items())
        return f"{{{limits}}}"


def _max_stale(value: Any) -> Any:
    """A number, as given; a mapping of priority to number: a :class:`StaleLimits`.

    A priority the mapping leaves out takes the limit of the nearest more urgent one
    named (the stricter side); those above every named one take the first named.
    """
    if not isinstance(value, Mapping):
        return duration(value)
    given: dict[Priority, Any] = {}
    for key, number in value.items():
        level = Priority.parse(key, field="ApiProfile.max_stale")
        try:
            given[level] = parse_duration(number)
        except ValueError as exc:
            raise ConfigError(f"ApiProfile.max_stale: {level}: {exc.args[0]}") from None
    if not given:
        raise ConfigError("ApiProfile.max_stale: a mapping must name at least one priority")
    order = list(Priority)  # most urgent first
    first = next(given[p] for p in order if p in given)
    limits: dict[Priority, float] = {}
    current = first
    for level in order:
        current = given.get(level, current)
        limits[level] = float(current)
    return StaleLimits(limits)


# A pace: "even", or 24 weights, one per UTC hour of the day (``ApiProfile.pace``).
Pace = Literal["even"] | tuple[float, ...]


def _pace(value: Any) -> Pace | None:
    """``"even"``, None, or 24 hour-of-day weights (finite numbers >= 0, not all 0)."""
    if value is None or value == "even":
        return cast(Pace | None, value)
    weights = tuple(value) if isinstance(value, list | tuple) else ()
    numbers = all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
    if len(weights) == 24 and numbers and all(0 <= w < math.inf for w in weights) and any(weights):
        return tuple(float(w) for w in weights)
    return cast(
        Pace,
        _Malformed(f'{value!r}: "even", or 24 weights >= 0 (not all 0), one per UTC hour'),
    )


def _alerts(value: Any) -> tuple[float, ...]:
    items = _tuple([value] if isinstance(value, int | float) else value)
    if isinstance(items, _Malformed):  # not a list: the validator names the field
        return items
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ConfigError(f"ApiProfile.alerts: {item!r} is not a number")
        if isinstance(item, float) and not 0.0 <= item <= 1.0:
            raise ConfigError(
                f"ApiProfile.alerts: {item!r}: a share of the quota is between 0.0 and 1.0"
                " (a whole number of units is an int)"
            )
        if isinstance(item, int) and item < 0:
            raise ConfigError(f"ApiProfile.alerts: {item!r}: units left must be >= 0")
    return items


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return tuple(value)
    return cast(tuple[Any, ...], _Malformed(f"expected a list, not {value!r}"))


def _methods(value: Iterable[str]) -> frozenset[str]:
    methods = _tuple(value)
    if isinstance(methods, _Malformed):
        return cast(frozenset[str], methods)
    if not all(isinstance(method, str) and method.strip() for method in methods):
        return cast(frozenset[str], _Malformed(f"expected HTTP method names, not {value!r}"))
    return frozenset(method.strip().upper() for method in methods)


def _numbers_in(low: float, high: float | None) -> Any:
    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Mapping[Any, Any]) -> None:
        for key, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TypeError(f"{key} must be a number, not {number!r}")
            if not math.isfinite(number) or number < low or (high is not None and number > high):
                bound = f"between {low} and {high}" if high is not None else f">= {low}"
                raise ValueError(f"{key} must be {bound}, not {number!r}")

    return validate


def _names(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{name!r} is not a parameter or header name")


class FreshnessRule(Protocol):
    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        """Seconds the response stays fresh, or None to defer to its HTTP headers."""


def probe_path(instance: object, attribute: object, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ValueError(f"{value!r} is not a path (it starts with '/')")


def unit_cost(request: httpx.Request) -> int:
    return 1


def status_verdict(response: httpx.Response) -> Verdict:
    return "ok"
