"""Routing: what a request means to the stack (its profile, priority, credential
fingerprint and storage key), and the redacted copy of it the cache sees. Strictly
private."""

from __future__ import annotations

import logging
from collections.abc import Collection

import attrs
import httpx

from .._credentials import Fingerprints, short
from .._hot import HOT_BYPASS
from .._info import Call, ResponseInfo, storage_key
from .._plugins import Registry
from .._priority import Priority, current_priority
from .._profiles import (
    DEFAULT_SECRET_HEADERS,
    DEFAULT_SECRET_PARAMS,
    SESSION_HEADERS,
    ApiProfile,
)
from .._secrets import cache_url, url_credentials

logger = logging.getLogger("quotaflow")

CALL = "quotaflow.call"

# What a hit's ResponseInfo varies by: priority, remaining, ttl, tier.
HitKey = tuple[Priority, int | None, float | None, str | None]


@attrs.frozen
class _Secrets:
    params: frozenset[str]
    headers: frozenset[bytes]  # lower case, as httpx keeps raw header names


@attrs.frozen
class _Route:
    """What a URL means to the stack, worked out once per URL."""

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
    # The ResponseInfo of hits on it, which only change with priority, remaining and ttl.
    hit_infos: dict[HitKey, ResponseInfo] = attrs.field(factory=dict, eq=False)


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
        self._routes: dict[tuple[str, str, int | None, bytes, bytes], _Route] = {}
        self._keys: dict[tuple[str, str], str] = {}

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

    def route(self, url: httpx.URL) -> _Route:
        """Remembered per URL: parsing and rebuilding a URL through httpx costs more than
        a whole cache hit. (Kept in process memory only, like the request itself.)"""
        # Everything that makes two URLs different resources is in the key, and so is
        # every credential the URL carries.
        key = (url.scheme, url.host, url.port, url.raw_path, url.userinfo)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= 4096:
                self._routes.clear()
            profile = self.registry.match(url)
            names = self.secrets(profile).params
            inner = cache_url(url, names)
            credentials = url_credentials(url, names)
            fingerprint = self.fingerprints.of(credentials)
            resource = str(inner)
            shared = _shared(profile, inner)
            found = self._routes[key] = _Route(
                profile,
                inner,
                resource,
                credentials,
                fingerprint,
                storage_key(_partition(resource, "" if shared else fingerprint)),
                shared,
                inner is url,
            )
        return found

    def _key(self, route: _Route, fingerprint: str) -> str:
        memo = (route.resource, fingerprint)
        found = self._keys.get(memo)
        if found is None:
            if len(self._keys) >= 4096:
                self._keys.clear()
            found = self._keys[memo] = storage_key(_partition(route.resource, fingerprint))
        return found

    def start(self, request: httpx.Request) -> Call:
        """The request's Call, put in its extensions. The request itself is left as the
        caller made it: a hit from the hot tier never needs the redacted copy."""
        route = self.route(request.url)
        profile = route.profile
        if profile.normalize is not None:
            # Onto the URL the API answers alike (``ApiProfile.normalize``): the request
            # itself changes, so that the key, the cache, the cost and upstream all
            # see the same URL.
            url = _normalized(profile, request)
            if url is not None and url != request.url:
                request.url = url
                route = self.route(url)
                profile = route.profile
        chosen = request.extensions.get("priority")
        priority = Priority.parse(chosen) if chosen is not None else current_priority()
        hot, hidden = _scan_headers(request, self.secrets(profile).headers)
        fingerprint, key = route.fingerprint, route.key
        if hidden:
            fingerprint = self.fingerprints.of(route.credentials + hidden)
            if not route.shared:
                key = self._key(route, fingerprint)
            # The quota account is the API key's: a session cookie is not one.
            keys = tuple(pair for pair in hidden if pair[0].lower() not in SESSION_HEADERS)
            if len(keys) != len(hidden):
                fingerprint = self.fingerprints.of(route.credentials + keys)
        call = Call(
            profile=profile,
            priority=priority,
            resource=route.resource,
            url=request.url,
            inner_url=route.url,
            key=key,
            hit_infos=route.hit_infos,
            secret_headers=hidden,
            hot=hot,
            account=short(fingerprint) if fingerprint else None,
            plain_url=route.plain,
        )
        request.extensions = {**request.extensions, CALL: call}
        return call

    def begin(self, request: httpx.Request) -> tuple[Call, httpx.Request]:
        call = self.start(request)
        return call, redacted(call, request)


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


def redacted(call: Call, request: httpx.Request) -> httpx.Request:
    """The request as everything below the hot tier sees it, hishel and its storage
    included: no secret parameters or headers, query sorted."""
    if call.plain_url and not call.secret_headers:
        return request  # nothing to hide
    return httpx.Request(
        request.method,
        call.inner_url,
        headers=_without_secrets(request.headers, call),
        stream=request.stream,
        extensions=request.extensions,
    )


def _without_secrets(headers: httpx.Headers, call: Call) -> httpx.Headers:
    if not call.secret_headers:
        return headers
    hidden = {name.lower().encode("latin-1") for name, _ in call.secret_headers}
    return httpx.Headers([(k, v) for k, v in headers.raw if k.lower() not in hidden])


def call_of(request: httpx.Request) -> Call | None:
    call = request.extensions.get(CALL)
    return call if isinstance(call, Call) else None


def upstream_request(request: httpx.Request, call: Call | None) -> httpx.Request:
    """The request to send: the redacted one with its credentials put back."""
    if call is None or (call.plain_url and not call.secret_headers):
        return request  # nothing was hidden
    headers = _without_secrets(request.headers, call)  # never twice, whatever came down
    return httpx.Request(
        request.method,
        call.url,
        headers=[*headers.multi_items(), *call.secret_headers],
        stream=request.stream,
        extensions=request.extensions,
    )


def _scan_headers(
    request: httpx.Request, secret_names: Collection[bytes]
) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """One pass over the raw pairs: whether the hot tier may answer (a GET without
    directives it can't judge), and the secret headers to hide (name, value)."""
    hot = request.method == "GET"
    secret = False
    for name, _ in request.headers.raw:
        lowered = name.lower()
        if lowered in secret_names:
            secret = True
        elif lowered in HOT_BYPASS:
            hot = False
    if not secret:
        return hot, ()
    hidden = tuple(
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in request.headers.raw
        if k.lower() in secret_names
    )
    return hot, hidden
