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
    hosts = ["127.0.0.1:18777"]   # also path_prefix, secret_params, secret_headers, limited_methods
    pace = "even"           # NORMAL and LOW held to an even plan to the reset (or 24
                            # weights, one per UTC hour: the plan bent by hour of day)
    alerts = [0.1, 50]      # warn at 10 % and at 50 units left
                            # (top level: alert_command = ["notify-send", "quota low"],
                            # run at each crossing, see _alert_command)

    [profiles.theoddsapi.freshness]   # the freshness rule's own settings
    live = "30s"                      # durations: seconds, or "30s", "5m", "1h", "1d"

    [apis.github]           # a new API, defined here alone
    hosts = ["api.github.com"]
    headers = "ratelimit"   # "none" (default), "x-requests", or a quotaflow.headers entry
                            # point: "ratelimit", "apisports"
    cost = { "/v1/bulk/*" = 5, "*" = 1 }   # or a number: units per request
    quota = { limit = 5000, period = "day" }
    ttl = "30s"

Environment variables override the file: ``QUOTAFLOW_CACHE=false`` (or ``0``,
``off``, ``no``; ``true``, ``1``, ``on``, ``yes`` turn a layer on),
``QUOTAFLOW_RATE_LIMIT``, ``QUOTAFLOW_FALLBACK``, and any key by its path with double
underscores, e.g. ``QUOTAFLOW__PROFILES__THEODDSAPI__MAX_STALE=600`` (values are read
as TOML values, so ``600``, ``0.5``, ``false`` and ``"text"`` all work).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ._alert_command import alert_command
from ._profiles import ApiProfile
from ._rules import cache_rules
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
    "hosts",
    "path_prefix",
    "secret_params",
    "secret_headers",
    "limited_methods",
    "pace",
    "alerts",
)


@attrs.frozen
class Settings:
    source: str | None
    flags: dict[str, bool]
    profiles: dict[str, dict[str, Any]]
    text: str = ""
    apis: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    # Checked by _rules.cache_rules when the client is built (make_client's win).
    default_ttl: Any = None
    url_rules: Any = None
    alert_command: Any = None  # checked here, made by _alert_command.alert_command


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
        name = f"QUOTAFLOW_{flag.upper()}"
        if (value := os.environ.get(name)) is not None:
            data[flag] = _switch(value, name)
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


_SWITCHES = {
    **dict.fromkeys(("1", "true", "on", "yes"), True),
    **dict.fromkeys(("0", "false", "off", "no"), False),
}


def _switch(value: str, name: str) -> bool:
    """A feature flag from the environment, as shells write them: 1/0, true/false,
    on/off, yes/no (any case)."""
    found = _SWITCHES.get(value.strip().lower())
    if found is None:
        raise ConfigError(f"{name}: expected one of 1/0, true/false, on/off, yes/no, not {value!r}")
    return found


def _literal(value: str, origin: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value  # a bare word: take it as text


def _read(found: tuple[Path, str | None] | None) -> tuple[dict[str, Any], str | None, str]:
    """The file's data (its ``[tool.quotaflow]`` table for pyproject.toml), name and text."""
    if found is None:
        return {}, None, ""
    path, table = found
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
    return data, str(path), text


def _flags(data: dict[str, Any], where: str, text: str) -> dict[str, bool]:
    flags = {}
    for flag in FLAGS:
        if flag in data:
            if not isinstance(data[flag], bool):
                wrong = data[flag]
                raise ConfigError(
                    f"{_at(where, text, '', flag)}: {flag}: expected true or false, not {wrong!r}"
                )
            flags[flag] = data[flag]
    return flags


def _tables(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``[profiles.NAME]`` and ``[apis.NAME]`` tables."""
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{where}: profiles: expected tables [profiles.NAME]")
    apis = data.get("apis", {})
    if not isinstance(apis, dict) or not all(isinstance(v, dict) for v in apis.values()):
        raise ConfigError(f"{where}: apis: expected tables [apis.NAME]")
    return profiles, apis


def load(
    explicit: str | os.PathLike[str] | bool | None = None, cwd: Path | None = None
) -> Settings:
    """Read the configuration (``explicit=False``: only the environment)."""
    found = (
        None
        if explicit is False
        else _find(explicit if explicit is not True else None, cwd or Path.cwd())
    )
    data, source, text = _read(found)
    _env_overrides(data)
    where = source or "environment"
    tables = ("profiles", "apis", "default_ttl", "url_rules", "alert_command")
    unknown = set(data) - {*FLAGS, *tables}
    if unknown:
        key = sorted(unknown)[0]
        known = ", ".join((*FLAGS, *tables))
        raise ConfigError(f"{_at(where, text, '', key)}: {key}: unknown setting (known: {known})")
    flags = _flags(data, where, text)
    profiles, apis = _tables(data, where)
    for key in ("default_ttl", "url_rules"):
        if key in data:  # checked here too, to name the file and line
            cache_rules(data.get("default_ttl"), data.get("url_rules"), _at(where, text, "", key))
    command = data.get("alert_command")
    alert_command(command, f"{_at(where, text, '', 'alert_command')}: alert_command")
    return Settings(
        source=where,
        flags=flags,
        profiles=profiles,
        text=text,
        apis=apis,
        default_ttl=data.get("default_ttl"),
        url_rules=data.get("url_rules"),
        alert_command=command,
    )


def _at(where: str, text: str, table: str, key: str) -> str:
    """``where`` with the line setting ``key`` under ``[table]``; for a key of a
    sub-table (``profiles.x.freshness``) written inline, the line of the sub-table's key."""
    line = _line(text, table, key) if text else None
    if line is None and text and "." in table:
        parent, _, name = table.rpartition(".")
        line = _line(text, parent, name)
    return f"{where}, line {line}" if line else where


def apply(settings: Settings, profiles: Iterable[ApiProfile]) -> list[ApiProfile]:
    """The profiles with the file's changes and the APIs its tables define (see
    ``_config_apply.apply_settings``)."""
    from ._config_apply import apply_settings

    return apply_settings(settings, profiles)
