"""Plugins: what they publish, how they are found, the registry of profiles.
Strictly private."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import attrs
import httpx

from ._defaults import DEFAULT_SECRET_PARAMS, ENTRY_POINT_GROUP
from ._fields import _checked, _tuple
from ._hosts import split_host, url_port
from ._profiles import DEFAULT_PROFILE, ApiProfile
from .exceptions import ConfigError


class Registry:
    """Finds the profile for a URL. Strictly private."""

    def __init__(
        self,
        profiles: Iterable[ApiProfile],
        secret_params: Iterable[str] = (),
        secret_headers: Iterable[str] = (),
    ) -> None:
        self.profiles: tuple[ApiProfile, ...] = tuple(profiles)
        # The client's own secret names (make_client), for every profile and host.
        self.extra_params = tuple(secret_params)
        self.extra_headers = tuple(name.lower() for name in secret_headers)
        # Exact host names resolve with one dict lookup on the hot path; a profile
        # naming the port comes before one naming the host alone.
        self._by_host: dict[str, list[tuple[int | None, ApiProfile]]] = {}
        self._wildcards: list[ApiProfile] = []
        for profile in self.profiles:
            for pattern in profile.hosts:
                host, port = split_host(pattern)
                if host.startswith("*."):
                    self._wildcards.append(profile)
                else:
                    self._by_host.setdefault(host, []).append((port, profile))
        for entries in self._by_host.values():
            entries.sort(key=lambda entry: entry[0] is None)  # stable: order kept otherwise
        self.secret_params = frozenset(
            DEFAULT_SECRET_PARAMS
            + self.extra_params
            + tuple(p for prof in self.profiles for p in prof.secret_params)
        )

    def match(self, url: httpx.URL) -> ApiProfile:
        entries = self._by_host.get(url.host)
        if entries:
            port = url_port(url)
            for wanted, profile in entries:
                if (wanted is None or wanted == port) and url.path.startswith(profile.path_prefix):
                    return profile
        for profile in self._wildcards:
            if profile.matches(url):
                return profile
        return DEFAULT_PROFILE


@attrs.frozen
class Plugin:
    """What a plugin publishes under the ``quotaflow.plugins`` entry-point group.

    An entry point may also name a bare :class:`ApiProfile`, a list of them, or a
    zero-argument callable returning any of these.

    Args:
        name: the plugin's name.
        profiles: the API profiles it provides.
        subscribers: callables receiving :mod:`quotaflow.events`.
        start: called once for every client built, with the client's state directory;
            returns more subscribers (e.g. an archive kept in that directory).
        commands: adds the plugin's sub-commands to the ``quotaflow`` command: called
            with its ``argparse`` sub-parsers; each parser it adds names the function
            that runs it with ``set_defaults(handler=function)`` (``function(args)``
            returns the exit status). Only the command line calls it.
        demo: what ``quotaflow demo`` runs, ``demo(state_dir, out, temporary=...)``:
            an offline scenario that keeps its state in ``state_dir`` (new or empty) and
            prints to ``out``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``commands`` and ``demo``.
    """

    name: str = attrs.field(validator=_checked(attrs.validators.instance_of(str)))
    profiles: tuple[ApiProfile, ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_checked(
            attrs.validators.deep_iterable(attrs.validators.instance_of(ApiProfile))
        ),
    )
    subscribers: tuple[Callable[[Any], None], ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_checked(attrs.validators.deep_iterable(attrs.validators.is_callable())),
    )
    start: Callable[[Path], Iterable[Callable[[Any], None]]] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )
    commands: Callable[[Any], None] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )
    demo: Callable[..., None] | None = attrs.field(
        default=None,
        validator=_checked(attrs.validators.optional(attrs.validators.is_callable())),
    )


def _as_plugin(obj: Any, origin: str) -> Plugin:
    if callable(obj) and not isinstance(obj, ApiProfile | Plugin):
        obj = obj()
    if isinstance(obj, Plugin):
        return obj
    if isinstance(obj, ApiProfile):
        return Plugin(name=origin, profiles=(obj,))
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        found = list(obj)
        if all(isinstance(item, ApiProfile) for item in found):
            return Plugin(name=origin, profiles=found)
    raise ConfigError(
        f"{origin}: expected a Plugin, an ApiProfile or a list of them, got {type(obj).__name__}"
    )


# The group's entry points, scanned once per process and import path: reading every
# installed distribution's metadata was most of what building a client cost.
_SCANNED: dict[tuple[str, ...], tuple[EntryPoint, ...]] = {}


def _entry_points() -> tuple[EntryPoint, ...]:
    key = tuple(sys.path)
    found = _SCANNED.get(key)
    if found is None:
        if len(_SCANNED) >= 16:
            _SCANNED.clear()
        found = _SCANNED[key] = tuple(entry_points(group=ENTRY_POINT_GROUP))
    return found


def discover_plugins() -> list[Plugin]:
    """Plugins published under the ``quotaflow.plugins`` entry-point group (found once
    per process and ``sys.path``; the plugins themselves are asked each time)."""
    found: list[Plugin] = []
    for entry_point in _entry_points():
        origin = f"plugin {entry_point.name!r} ({entry_point.value})"
        try:
            obj = entry_point.load()
        except Exception as exc:
            raise ConfigError(f"{origin}: could not be loaded: {exc}") from exc
        found.append(_as_plugin(obj, origin))
    return found


def resolve_plugins(
    profiles: Iterable[ApiProfile] | None, plugins: bool, state_dir: Path | None = None
) -> tuple[Registry, list[Callable[[Any], None]]]:
    """Plugin profiles, then explicit ones (a later profile replaces one of the same
    name), and the plugins' subscribers (started for ``state_dir`` when given)."""
    by_name: dict[str, ApiProfile] = {}
    subscribers: list[Callable[[Any], None]] = []
    for plugin in discover_plugins() if plugins else []:
        subscribers.extend(plugin.subscribers)
        if plugin.start is not None and state_dir is not None:
            try:
                subscribers.extend(plugin.start(state_dir))
            except Exception as exc:
                raise ConfigError(f"plugin {plugin.name!r}: start() failed: {exc}") from exc
        for profile in plugin.profiles:
            by_name[profile.name] = profile
    if profiles is not None:
        if isinstance(profiles, ApiProfile) or not isinstance(profiles, Iterable):
            raise ConfigError("profiles: expected a list of ApiProfile")
        for profile in _as_plugin(list(profiles), "profiles").profiles:
            by_name[profile.name] = profile
    return Registry(by_name.values()), subscribers
