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
    pace = "even"           # NORMAL and LOW held to an even plan to the reset
    alerts = [0.1, 50]      # warn at 10 % and at 50 units left

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

import fnmatch
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

import attrs

from ._priority import Priority
from ._profiles import ApiProfile, Quota, QuotaHeaders, Rate, parse_duration
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


# What an [apis.NAME] table may set besides the profile fields above (freshness aside).
_API_FIELDS = (
    *(field for field in _PROFILE_FIELDS if field != "freshness"),
    "ttl",
    "cost",
    "headers",
    "windowless",
)
#: Entry-point group of quota-header conventions beyond the built-in ones: a callable
#: taking ``period`` (and the table's convention options) and returning ApiProfile
#: arguments (``read_quota``, ``read_window``).
HEADERS_GROUP = "quotaflow.headers"
_BUILT_IN_HEADERS = ("none", "x-requests")


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


@attrs.frozen
class FixedTtl:
    """The freshness rule of an ``[apis.NAME]`` table's ``ttl``: every successful
    answer stays fresh ``ttl`` seconds. Strictly private."""

    ttl: float

    def __call__(self, request: Any, response: Any, now: float) -> float | None:
        return self.ttl


@attrs.frozen
class PathCosts:
    """The cost rule of an ``[apis.NAME]`` table's ``cost``: a number of units per
    request, or a table of path globs to units, the first match winning (a path no
    glob matches costs 1). Strictly private."""

    costs: tuple[tuple[str, int], ...]

    def __call__(self, request: Any) -> int:
        path = request.url.path
        return next((cost for glob, cost in self.costs if fnmatch.fnmatchcase(path, glob)), 1)


def _costs(value: Any) -> PathCosts:
    pairs = value.items() if isinstance(value, dict) else [("*", value)]
    costs = []
    for glob, cost in pairs:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"expected a whole number of units >= 0, not {cost!r}")
        if not isinstance(glob, str) or not glob.startswith(("/", "*")):
            raise ValueError(f"{glob!r} is not a path glob such as '/v1/odds/*'")
        costs.append((glob, cost))
    return PathCosts(tuple(costs))


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
    tables = ("profiles", "apis", "default_ttl", "url_rules")
    unknown = set(data) - {*FLAGS, *tables}
    if unknown:
        key = sorted(unknown)[0]
        known = ", ".join((*FLAGS, *tables))
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
    apis = data.get("apis", {})
    if not isinstance(apis, dict) or not all(isinstance(v, dict) for v in apis.values()):
        raise ConfigError(f"{where}: apis: expected tables [apis.NAME]")
    for key in ("default_ttl", "url_rules"):
        if key in data:  # checked here too, to name the file and line
            cache_rules(data.get("default_ttl"), data.get("url_rules"), _at(where, text, "", key))
    return Settings(
        source=where,
        flags=flags,
        profiles=profiles,
        text=text,
        apis=apis,
        default_ttl=data.get("default_ttl"),
        url_rules=data.get("url_rules"),
    )


def _at(where: str, text: str, table: str, key: str) -> str:
    """``where`` with the line setting ``key`` under ``[table]``; for a key of a
    sub-table (``profiles.x.freshness``) written inline, the line of the sub-table's key."""
    line = _line(text, table, key) if text else None
    if line is None and text and "." in table:
        parent, _, name = table.rpartition(".")
        line = _line(text, parent, name)
    return f"{where}, line {line}" if line else where


def _convert(field: str, value: Any, profile: ApiProfile | None) -> Any:
    if field == "rates":
        items = value if isinstance(value, list) else [value]
        return tuple(Rate(**item) if isinstance(item, dict) else item for item in items)
    if field == "quota":
        return Quota(**value) if isinstance(value, dict) else value
    if field == "max_stale" and isinstance(value, dict) and profile is not None:
        # Per priority: the ones named change, the others keep the profile's limit
        # (an [apis.NAME] table has no profile before it: the mapping is all there is).
        return {**{p: profile.stale_limit(p) for p in Priority}, **value}
    if field == "freshness":
        rule = profile.freshness if profile is not None else None
        if not isinstance(value, dict) or rule is None or not attrs.has(type(rule)):
            raise ConfigError("this profile's freshness rule has no settings to change")
        return attrs.evolve(cast(Any, rule), **_rule_settings(rule, value))
    return value


def _rule_settings(rule: Any, value: dict[str, Any]) -> dict[str, Any]:
    """A freshness rule's new settings: where the rule holds a number of seconds, the
    new value must be a duration (a string such as ``"30s"`` would otherwise reach the
    rule, which returns it as its answer, and turn caching off)."""
    known = {field.name for field in attrs.fields(type(rule))}
    changes = {}
    for key, new in value.items():
        if key not in known:
            raise ConfigError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
        current = getattr(rule, key)
        if isinstance(current, int | float) and not isinstance(current, bool):
            try:
                new = parse_duration(new)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc.args[0]}") from None
        changes[key] = new
    return changes


def _header_line(text: str, table: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header and header.group(1).strip() == table:
            return number
    return None


def _headers(convention: Any, period: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ApiProfile arguments that read a quota-header convention."""
    if convention == "none":
        if options:
            raise ConfigError(f"{next(iter(options))}: only for headers = 'ratelimit'")
        return {}
    if convention == "x-requests":
        if options:
            raise ConfigError(f"{next(iter(options))}: only for headers = 'ratelimit'")
        # The Odds API's convention (shared/APIS.md): credits left, used this period,
        # and what the last call cost.
        return {
            "read_quota": QuotaHeaders(
                remaining="x-requests-remaining", used="x-requests-used", last="x-requests-last"
            )
        }
    found = {point.name: point for point in entry_points(group=HEADERS_GROUP)}
    if not isinstance(convention, str) or convention not in found:
        known = ", ".join(repr(name) for name in (*_BUILT_IN_HEADERS, *sorted(found)))
        hint = "" if "ratelimit" in found else " ('ratelimit' needs quotaflow-ratelimit-headers)"
        raise ConfigError(f"headers: expected one of {known}, not {convention!r}{hint}")
    try:
        readers = found[convention].load()(period=period, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"headers = {convention!r}: {exc}") from None
    return dict(readers)


def _api(name: str, table_data: dict[str, Any], source: str, text: str) -> ApiProfile:
    """The profile an ``[apis.NAME]`` table defines."""
    table = f"apis.{name}"
    if "hosts" not in table_data:
        line = _header_line(text, table) if text else None
        where = f"{source}, line {line}" if line else source
        raise ConfigError(f"{where}: {table}.hosts: missing (required)")
    arguments: dict[str, Any] = {"name": name}
    options: dict[str, Any] = {}
    for field, value in table_data.items():
        where = _at(source, text, table, field)
        if field not in _API_FIELDS:
            known = ", ".join(_API_FIELDS)
            raise ConfigError(f"{where}: {table}.{field}: unknown setting (known: {known})")
        try:
            if field == "ttl":
                arguments["freshness"] = FixedTtl(parse_duration(value))
            elif field == "cost":
                arguments["cost"] = _costs(value)
            elif field == "windowless":
                options[field] = value
            elif field != "headers":
                arguments[field] = _convert(field, value, None)
        except (ConfigError, TypeError, ValueError) as exc:
            detail = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"{where}: {table}.{field}: {detail}") from None
    quota = arguments.get("quota")
    period = quota.period if isinstance(quota, Quota) else "day"
    try:
        arguments.update(_headers(table_data.get("headers", "none"), period, options))
    except ConfigError as exc:
        key = "headers" if "headers" in table_data else next(iter(options), "hosts")
        where = _at(source, text, table, key)
        raise ConfigError(f"{where}: {table}.{exc.args[0]}") from None
    try:
        return ApiProfile(**arguments)
    except ConfigError as exc:
        found = re.search(r"ApiProfile\.(\w+)", exc.args[0])
        where = _at(source, text, table, found.group(1)) if found else source
        raise ConfigError(f"{where}: {table}: {exc.args[0]}") from None


def apply(settings: Settings, profiles: Iterable[ApiProfile]) -> list[ApiProfile]:
    """The profiles with the file's changes, each checked by ApiProfile's own validators,
    and the profiles its ``[apis.NAME]`` tables define."""
    by_name = {profile.name: profile for profile in profiles}
    source, text = settings.source or "", settings.text
    for name, table_data in settings.apis.items():
        if name in by_name:
            line = _header_line(text, f"apis.{name}") if text else None
            where = f"{source}, line {line}" if line else source
            raise ConfigError(
                f"{where}: apis.{name}: a profile of that name is installed already "
                f"(change it under [profiles.{name}])"
            )
        by_name[name] = _api(name, table_data, source, text)
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
                key = re.match(r"(\w+):", detail)
                if field == "freshness" and key and isinstance(value, Mapping) and key[1] in value:
                    where = _at(source, text, f"{table}.freshness", key[1])
                raise ConfigError(f"{where}: {table}.{field}: {detail}") from None
        try:
            by_name[name] = attrs.evolve(profile, **converted)
        except ConfigError as exc:
            found = re.search(r"ApiProfile\.(\w+)", exc.args[0])
            where = _at(source, text, table, found.group(1)) if found else source
            raise ConfigError(f"{where}: {table}: {exc.args[0]}") from None
    return list(by_name.values())
