"""Routing: what a request means to the stack (its profile, priority, credential
fingerprint and storage key), and the redacted copy of it the cache sees. Strictly
private."""

from __future__ import annotations

import logging
from collections.abc import Hashable

import attrs
import httpx

from .._credentials import Fingerprints, short
from .._hot import HOT_BYPASS
from .._httpx_fast import header_names, url_key
from .._info import ROUTE, HitKey, ResponseInfo, Route, storage_key
from .._plugins import Registry
from .._priority import Priority, current_priority
from .._profiles import (
    DEFAULT_SECRET_HEADERS,
    DEFAULT_SECRET_PARAMS,
    SESSION_HEADERS,
    ApiProfile,
)
from .._secrets import split_url

logger = logging.getLogger("quotaflow")


@attrs.frozen
class _Secrets:
    params: frozenset[str]
    headers: frozenset[bytes]  # lower case, as httpx keeps raw header names
    # The cache directives the hot tier cannot judge, but for secret headers (hidden).
    bypass: frozenset[bytes] = attrs.field(init=False)

    @bypass.default
    def _bypass(self) -> frozenset[bytes]:
        return HOT_BYPASS - self.headers


# What a Route depends on besides its URL: the priority, whether the hot tier may
# answer, and the secret headers (name, value).
_RouteKey = tuple[Priority, bool, tuple[tuple[str, str], ...]]


@attrs.frozen
class _UrlRoute:
    """What a URL means to the stack, worked out once per URL (the per-request
    ``Route`` adds what the request itself says)."""

    profile: ApiProfile
    url: httpx.URL  # without secrets, query sorted: what hishel and storage see
    resource: str  # the same, as the key everything else uses
    # The credentials the URL itself carries (secret parameters, userinfo).
    credentials: tuple[tuple[str, str], ...]
    # Their fingerprint ("" if none), and the storage key of a request carrying no
    # other credential: hashed once.
    fingerprint: str
    key: str
    # Whether the profile shares this URL's answers across credentials.
    shared: bool
    # Whether the URL is already as the cache sees it (no secret, query sorted).
    plain: bool
    # The ResponseInfo of hits on it, which only change with what _info.HitKey holds.
    hit_infos: dict[HitKey, ResponseInfo] = attrs.field(factory=dict, eq=False)
    # The Routes of requests for it, which only change with what _RouteKey holds.
    routes: dict[_RouteKey, Route] = attrs.field(factory=dict, eq=False)


def _shared(profile: ApiProfile, url: httpx.URL) -> bool:
    """Whether ``profile`` shares the answers of ``url`` across credentials."""
    rule = profile.shared_answers
    if isinstance(rule, bool):
        return rule
    try:
        return bool(rule(url))
    except Exception:
        logger.warning("profile %s: shared_answers failed; not sharing", profile.name)
        return False


def _partition(resource: str, fingerprint: str) -> str:
    """What the storage key is hashed from: the resource, and the credential's
    fingerprint when the profile's answers depend on it."""
    return resource if not fingerprint else f"{resource}\ncredential={fingerprint}"


class Router:
    """Turns a caller's request into the stack's: profile, priority, credential
    fingerprint, storage key, redacted copy."""

    def __init__(self, registry: Registry, fingerprints: Fingerprints) -> None:
        self.registry = registry
        self.fingerprints = fingerprints
        self._secrets: dict[str, _Secrets] = {}
        self._routes: dict[Hashable, _UrlRoute] = {}
        self._keys: dict[tuple[str, str], str] = {}
        # Resources whose URL the storage keeps as it is, and their profile.
        self._clean: dict[str, ApiProfile] = {}
        self._stored_secrets = frozenset(name.lower() for name in registry.secret_params)

    def secrets(self, profile: ApiProfile) -> _Secrets:
        found = self._secrets.get(profile.name)
        if found is None:
            found = self._secrets[profile.name] = _Secrets(
                params=frozenset(
                    DEFAULT_SECRET_PARAMS + self.registry.extra_params + profile.secret_params
                ),
                headers=frozenset(
                    name.encode()
                    for name in DEFAULT_SECRET_HEADERS
                    + self.registry.extra_headers
                    + profile.secret_headers
                ),
            )
        return found

    def url_route(self, url: httpx.URL) -> _UrlRoute:
        """Remembered per URL: parsing and rebuilding a URL through httpx costs more than
        a whole cache hit. (Kept in process memory only, like the request itself.)"""
        # Everything that makes two URLs different resources is in the key, and so is
        # every credential the URL carries.
        key = url_key(url)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= 4096:
                self._routes.clear()
            found = self._routes[key] = self._url_route(url)
        return found

    def _url_route(self, url: httpx.URL) -> _UrlRoute:
        profile = self.registry.match(url)
        inner, credentials, kept = split_url(url, self.secrets(profile).params)
        fingerprint = self.fingerprints.of(credentials)
        resource = str(inner)
        shared = _shared(profile, inner)
        if kept.isdisjoint(self._stored_secrets):
            # Stored as it is (``_retention``): no userinfo, no parameter any profile
            # calls secret. The storage learns its profile here instead of parsing it.
            if len(self._clean) >= 4096:
                self._clean.clear()
            self._clean[resource] = profile
        return _UrlRoute(
            profile,
            inner,
            resource,
            credentials,
            fingerprint,
            storage_key(_partition(resource, "" if shared else fingerprint)),
            shared,
            inner is url,
        )

    def stored_profile(self, resource: str) -> ApiProfile | None:
        """The profile of ``resource``, if this router made it and storage keeps its URL
        as it is (no userinfo, no parameter named in ``Registry.secret_params``); None:
        the storage works both out itself."""
        return self._clean.get(resource)

    def _key(self, route: _UrlRoute, fingerprint: str) -> str:
        memo = (route.resource, fingerprint)
        found = self._keys.get(memo)
        if found is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            found = self._keys[memo] = storage_key(_partition(route.resource, fingerprint))
        return found

    def route(self, request: httpx.Request) -> Route:
        """The request's Route, put in its extensions. The request itself is left as the
        caller made it: a hit from the hot tier never needs the redacted copy."""
        found = self.url_route(request.url)
        profile = found.profile
        if profile.normalize is not None:
            # Onto the URL the API answers alike (``ApiProfile.normalize``): the request
            # itself changes, so that the key, the cache, the cost and upstream all
            # see the same URL.
            url = _normalized(profile, request)
            if url is not None and url != request.url:
                request.url = url
                found = self.url_route(url)
                profile = found.profile
        chosen = request.extensions.get("priority")
        priority = Priority.parse(chosen) if chosen is not None else current_priority()
        hot, hidden = _scan_headers(request, self.secrets(profile))
        memo = (priority, hot, hidden)
        route = found.routes.get(memo)
        if route is None:
            if len(found.routes) >= 16:
                found.routes.clear()
            route = found.routes[memo] = self._route(found, request.url, *memo)
        request.extensions = {**request.extensions, ROUTE: route}
        return route

    def _route(
        self,
        found: _UrlRoute,
        url: httpx.URL,
        priority: Priority,
        hot: bool,
        hidden: tuple[tuple[str, str], ...],
    ) -> Route:
        fingerprint, key = found.fingerprint, found.key
        if hidden:
            fingerprint = self.fingerprints.of(found.credentials + hidden)
            if not found.shared:
                key = self._key(found, fingerprint)
            # The quota account is the API key's: a session cookie is not one.
            keys = tuple(pair for pair in hidden if pair[0].lower() not in SESSION_HEADERS)
            if len(keys) != len(hidden):
                fingerprint = self.fingerprints.of(found.credentials + keys)
        return Route(
            profile=found.profile,
            priority=priority,
            resource=found.resource,
            url=url,
            inner_url=found.url,
            key=key,
            hit_infos=found.hit_infos,
            secret_headers=hidden,
            hot=hot,
            account=short(fingerprint) if fingerprint else None,
            plain_url=found.plain,
        )

    def route_redacted(self, request: httpx.Request) -> tuple[Route, httpx.Request]:
        """The request's Route, and the redacted copy of the request (see redacted)."""
        route = self.route(request)
        return route, redacted(route, request)


def _normalized(profile: ApiProfile, request: httpx.Request) -> httpx.URL | None:
    assert profile.normalize is not None
    try:
        url = profile.normalize(request)
    except Exception:
        logger.warning("profile %s: normalize() failed, ignoring it", profile.name, exc_info=True)
        return None
    if not isinstance(url, httpx.URL) or (url.scheme, url.host, url.port) != (
        request.url.scheme,
        request.url.host,
        request.url.port,
    ):
        return None  # never to another origin: the credentials go along
    return url


def redacted(route: Route, request: httpx.Request) -> httpx.Request:
    """The request as everything below the hot tier sees it, hishel and its storage
    included: no secret parameters or headers, query sorted."""
    if route.plain_url and not route.secret_headers:
        return request  # nothing to hide
    return httpx.Request(
        request.method,
        route.inner_url,
        headers=_without_secrets(request.headers, route),
        stream=request.stream,
        extensions=request.extensions,
    )


def _without_secrets(headers: httpx.Headers, route: Route) -> httpx.Headers:
    if not route.secret_headers:
        return headers
    hidden = {name.lower().encode("latin-1") for name, _ in route.secret_headers}
    return httpx.Headers([(k, v) for k, v in headers.raw if k.lower() not in hidden])


def upstream_request(request: httpx.Request, route: Route | None) -> httpx.Request:
    """The request to send: the redacted one with its credentials put back."""
    if route is None or (route.plain_url and not route.secret_headers):
        return request  # nothing was hidden
    headers = _without_secrets(request.headers, route)  # never twice, whatever came down
    return httpx.Request(
        request.method,
        route.url,
        headers=[*headers.multi_items(), *route.secret_headers],
        stream=request.stream,
        extensions=request.extensions,
    )


def _scan_headers(
    request: httpx.Request, secrets: _Secrets
) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """Whether the hot tier may answer (a GET without directives it can't judge), and
    the secret headers to hide (name, value)."""
    names = header_names(request.headers)
    hot = request.method == "GET" and names.isdisjoint(secrets.bypass)
    secret_names = secrets.headers
    if names.isdisjoint(secret_names):
        return hot, ()
    hidden = tuple(
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in request.headers.raw
        if k.lower() in secret_names
    )
    return hot, hidden
