"""Profiles listed in a TOML file, and the plugin's entry point."""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quotaflow.exceptions import ConfigError
from quotaflow.profiles import ApiProfile, parse_duration

from ._profile import profile_for

__all__ = ["ENV_VAR", "plugin_profiles", "profiles_from_file"]

#: The environment variable naming the file the plugin's entry point reads.
ENV_VAR = "QUOTAFLOW_RATELIMIT_FILE"


class _Invalid(Exception):
    """A field's value is wrong. Strictly private."""


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"expected a non-empty string, not {value!r}")
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _Invalid(f"expected a list of non-empty strings, not {value!r}")
    return tuple(value)


def _whole(low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _Invalid(f"expected an integer >= {low}, not {value!r}")
        return value

    return check


def _seconds(positive: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise _Invalid(exc.args[0]) from None
        if positive and seconds == 0:
            raise _Invalid(f"expected a duration > 0, not {value!r}")
        return seconds

    return check


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or (value and not value.startswith("/")):
        raise _Invalid(f"expected a path starting with '/', not {value!r}")
    return value


def _windowless(value: Any) -> str:
    if value not in ("window", "quota"):
        raise _Invalid(f"expected 'window' or 'quota', not {value!r}")
    return str(value)


def _period(value: Any) -> str:
    if value not in ("day", "month"):
        raise _Invalid(f"expected 'day' or 'month', not {value!r}")
    return str(value)


# TOML key -> (profile_for argument, check). name and hosts are required.
_FIELDS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", _text),
    "hosts": ("hosts", _texts),
    "path_prefix": ("path_prefix", _prefix),
    "quota": ("quota", _whole(1)),
    "period": ("quota_period", _period),
    "reset_day": ("reset_day", _whole(1)),
    "rate": ("rate", _whole(1)),
    "per": ("per", _seconds(positive=True)),
    "burst": ("burst", _whole(1)),
    "ttl": ("ttl", _seconds(positive=False)),
    "max_stale": ("max_stale", _seconds(positive=False)),
    "secret_params": ("secret_params", _texts),
    "secret_headers": ("secret_headers", _texts),
    "windowless": ("windowless", _windowless),
}
_REQUIRED = ("name", "hosts")


def _profile(where: str, entry: Any) -> ApiProfile:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table, not {entry!r}")
    for key in _REQUIRED:
        if key not in entry:
            raise ConfigError(f"{where}.{key}: missing (required)")
    arguments: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in _FIELDS:
            known = ", ".join(_FIELDS)
            raise ConfigError(f"{where}.{key}: unknown field (known: {known})")
        argument, check = _FIELDS[key]
        try:
            arguments[argument] = check(value)
        except _Invalid as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
    for key in ("per", "burst"):
        if key in entry and "rate" not in entry:
            raise ConfigError(f"{where}.{key}: needs a rate")
    if "reset_day" in entry and "quota" not in entry:
        raise ConfigError(f"{where}.reset_day: needs a quota")
    try:
        return profile_for(**arguments)
    except ConfigError as exc:
        # The profile's own checks (a host name, a day of the month...) name their field.
        raise ConfigError(f"{where}: {exc}") from None


def profiles_from_file(path: str | os.PathLike[str]) -> list[ApiProfile]:
    """Profiles listed in a TOML file, one ``[[api]]`` table each::

        [[api]]
        name = "github"
        hosts = ["api.github.com"]
        quota = 5000        # units per period, until the headers tell
        period = "day"      # or "month"
        rate = 10           # requests per `per` seconds
        per = 1.0
        max_stale = 3600    # seconds a stored answer may stand in for a failure
        ttl = 60            # seconds every answer stays fresh

    Also ``reset_day``, ``burst``, ``path_prefix``, ``secret_params`` and
    ``secret_headers``; see :func:`profile_for`. Only ``name`` and ``hosts`` are
    required.

    Raises:
        quotaflow.ConfigError: the file cannot be read or is not valid; the message
            names the file, the entry (``api[0]`` is the first) and the field.

    .. versionadded:: 0.1
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"api"})
    if unknown:
        raise ConfigError(f"{file}: unknown top-level key {unknown[0]!r} (expected [[api]] tables)")
    entries = data.get("api", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{file}: api: expected [[api]] tables, not {type(entries).__name__}")
    profiles: list[ApiProfile] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{file}: api[{index}]"
        profile = _profile(where, entry)
        if profile.name in seen:
            raise ConfigError(
                f"{where}.name: {profile.name!r} is already the name of api[{seen[profile.name]}]"
            )
        seen[profile.name] = index
        profiles.append(profile)
    return profiles


def plugin_profiles() -> list[ApiProfile]:
    """The plugin's entry point: the profiles of ``$QUOTAFLOW_RATELIMIT_FILE``, if set.

    Deprecated: define the APIs in ``quotaflow.toml`` instead, one ``[apis.NAME]``
    table each with ``headers = "ratelimit"`` (docs/any-api.md). The variable is
    still read, with a DeprecationWarning.

    Raises:
        quotaflow.ConfigError: the file named is missing or invalid.

    .. versionadded:: 0.1
    .. deprecated:: 0.2
       ``$QUOTAFLOW_RATELIMIT_FILE``: use ``[apis.NAME]`` tables in ``quotaflow.toml``.
    """
    path = os.environ.get(ENV_VAR)
    if not path:
        return []
    profiles = profiles_from_file(path)
    warnings.warn(
        f"${ENV_VAR} is deprecated: define these APIs in quotaflow.toml as [apis.NAME] "
        'tables with headers = "ratelimit"',
        DeprecationWarning,
        stacklevel=2,
    )
    return profiles
