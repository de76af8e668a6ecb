"""Configuration without code: a TOML file plus environment overrides. Strictly private.

Where: ``$QUOTAFLOW_CONFIG``, else ``quotaflow.toml`` in the working directory, else
``[tool.quotaflow]`` in ``pyproject.toml`` there. What::

    cache = true            # feature flags: turn a layer off
    rate_limit = true
    fallback = true

    [profiles.theoddsapi]   # change an installed profile, by name
    max_stale = 3600        # or per priority, the others keeping theirs: { critical = 900 }
    retries = 1
    rates = [{ limit = 30, per = 1.0, burst = 30 }]
    quota = { limit = 20000, period = "month", reset_day = 15 }
    reserves = { low = 0.6 }
    max_wait = { normal = 2 }
    pace = "even"           # NORMAL and LOW held to an even plan to the reset
    alerts = [0.1, 50]      # warn at 10 % and at 50 units left

    [profiles.theoddsapi.freshness]   # the freshness rule's own settings
    live = 30

Environment variables override the file: ``QUOTAFLOW_CACHE=false``,
``QUOTAFLOW_RATE_LIMIT``, ``QUOTAFLOW_FALLBACK``, and any key by its path with double
underscores, e.g. ``QUOTAFLOW__PROFILES__THEODDSAPI__MAX_STALE=600`` (values are read
as TOML values, so ``600``, ``0.5``, ``false`` and ``"text"`` all work).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs

from ._priority import Priority
from ._profiles import ApiProfile, Quota, Rate
from .exceptions import ConfigError

FLAGS = ("cache", "rate_limit", "fallback")
_PROFILE_FIELDS = (
    "rates",
    "quota",
    "reserves",
    "max_wait",
    "max_stale",
    "revalidation_window",
    "default_ttl",
    "retries",
    "backoff",
    "backoff_max",
    "breaker_threshold",
    "breaker_cooldown",
    "freshness",
    "pace",
    "alerts",
)


@attrs.frozen
class Settings:
    source: str | None
    flags: dict[str, bool]
    profiles: dict[str, dict[str, Any]]
    text: str = ""


def _find(explicit: str | os.PathLike[str] | None, cwd: Path) -> tuple[Path, str | None] | None:
    """The file to read and, for pyproject.toml, the table inside it."""
    if explicit is not None:
        return Path(explicit), None
    if env := os.environ.get("QUOTAFLOW_CONFIG"):
        return Path(env), None
    if (cwd / "quotaflow.toml").is_file():
        return cwd / "quotaflow.toml", None
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and re.search(
        r"^\[tool\.quotaflow[.\]]", pyproject.read_text("utf-8"), re.M
    ):
        return pyproject, "tool.quotaflow"
    return None


def _line(text: str, table: str, key: str) -> int | None:
    """Where ``key`` is set under ``[table]`` (or inline in its parent), 1-based."""
    current = ""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            current = header.group(1).strip()
            continue
        if pattern.match(line) and (current == table or not table):
            return number
    return None


def _env_overrides(data: dict[str, Any]) -> None:
    for flag in FLAGS:
        if (value := os.environ.get(f"QUOTAFLOW_{flag.upper()}")) is not None:
            data[flag] = _literal(value, f"QUOTAFLOW_{flag.upper()}")
    for name, value in os.environ.items():
        if not name.startswith("QUOTAFLOW__"):
            continue
        path = [part.lower() for part in name[len("QUOTAFLOW__") :].split("__") if part]
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: {part} is not a table")
        if path:
            target[path[-1]] = _literal(value, name)


def _literal(value: str, origin: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value  # a bare word: take it as text


def load(
    explicit: str | os.PathLike[str] | bool | None = None, cwd: Path | None = None
) -> Settings:
    """Read the configuration (``explicit=False``: only the environment)."""
    data: dict[str, Any] = {}
    source: str | None = None
    text = ""
    found = (
        None
        if explicit is False
        else _find(explicit if explicit is not True else None, cwd or Path.cwd())
    )
    if found is not None:
        path, table = found
        source = str(path)
        try:
            text = path.read_text("utf-8")
            data = tomllib.loads(text)
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if table is not None:
            for part in table.split("."):
                data = data.get(part, {})
    _env_overrides(data)
    where = source or "environment"
    unknown = set(data) - {*FLAGS, "profiles"}
    if unknown:
        key = sorted(unknown)[0]
        known = ", ".join((*FLAGS, "profiles"))
        raise ConfigError(f"{_at(where, text, '', key)}: {key}: unknown setting (known: {known})")
    flags = {}
    for flag in FLAGS:
        if flag in data:
            if not isinstance(data[flag], bool):
                wrong = data[flag]
                raise ConfigError(
                    f"{_at(where, text, '', flag)}: {flag}: expected true or false, not {wrong!r}"
                )
            flags[flag] = data[flag]
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{where}: profiles: expected tables [profiles.NAME]")
    return Settings(source=where, flags=flags, profiles=profiles, text=text)


def _at(where: str, text: str, table: str, key: str) -> str:
    line = _line(text, table, key) if text else None
    return f"{where}, line {line}" if line else where


def _convert(field: str, value: Any, profile: ApiProfile) -> Any:
    if field == "rates":
        items = value if isinstance(value, list) else [value]
        return tuple(Rate(**item) if isinstance(item, dict) else item for item in items)
    if field == "quota":
        return Quota(**value) if isinstance(value, dict) else value
    if field == "max_stale" and isinstance(value, dict):
        # Per priority: the ones named change, the others keep the profile's limit.
        return {**{p: profile.stale_limit(p) for p in Priority}, **value}
    if field == "freshness":
        rule = profile.freshness
        if not isinstance(value, dict) or rule is None or not attrs.has(type(rule)):
            raise ConfigError("this profile's freshness rule has no settings to change")
        return attrs.evolve(cast(Any, rule), **value)
    return value


def apply(settings: Settings, profiles: Iterable[ApiProfile]) -> list[ApiProfile]:
    """The profiles with the file's changes, each checked by ApiProfile's own validators."""
    by_name = {profile.name: profile for profile in profiles}
    source, text = settings.source or "", settings.text
    for name, changes in settings.profiles.items():
        table = f"profiles.{name}"
        if name not in by_name:
            installed = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(f"{source}: {table}: no such profile (installed: {installed})")
        profile = by_name[name]
        converted = {}
        for field, value in changes.items():
            where = _at(source, text, table, field)
            if field == "freshness" and isinstance(value, Mapping) and value:
                where = _at(source, text, f"{table}.freshness", next(iter(value)))
            if field not in _PROFILE_FIELDS:
                known = ", ".join(_PROFILE_FIELDS)
                raise ConfigError(f"{where}: {table}.{field}: unknown setting (known: {known})")
            try:
                converted[field] = _convert(field, value, profile)
            except (ConfigError, TypeError) as exc:
                detail = exc.args[0] if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(f"{where}: {table}.{field}: {detail}") from None
        try:
            by_name[name] = attrs.evolve(profile, **converted)
        except ConfigError as exc:
            found = re.search(r"ApiProfile\.(\w+)", exc.args[0])
            where = _at(source, text, table, found.group(1)) if found else source
            raise ConfigError(f"{where}: {table}: {exc.args[0]}") from None
    return list(by_name.values())
