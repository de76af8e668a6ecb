"""Recording without secrets: what a request's credentials are, scrubbed from what is
written, and the recorded exchanges a replay or a recorder in "once" mode answers from.
Strictly private."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Collection, Iterable
from urllib.parse import unquote_plus

import attrs
import httpx

from .._plugins import Registry
from .._profiles import DEFAULT_SECRET_HEADERS, ApiProfile
from .._secrets import REDACTED, cache_url, redact_header_url, redact_links
from ._cassette import Exchange

# Never written: cookies and credentials (whatever the profile), and what describes one
# connection rather than the answer (the body is stored whole and decoded).
_DROPPED = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization"}
    | {"connection", "keep-alive", "transfer-encoding", "content-length"}
)
_CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
_URL_HEADERS = frozenset({"location", "content-location"})
# Values shorter than this are not scrubbed from bodies: "1" is not a credential.
_MIN_SECRET = 4


class Secrets:
    """Which names are credentials, and how a URL is keyed without them. Strictly private."""

    def __init__(self, profiles: Iterable[ApiProfile]) -> None:
        self.registry = Registry(profiles)
        self.params = self.registry.secret_params
        self.lowered = frozenset(name.lower() for name in self.params)
        self.headers = frozenset(DEFAULT_SECRET_HEADERS) | {
            name for profile in self.registry.profiles for name in profile.secret_headers
        }

    def strip_url(self, url: httpx.URL) -> httpx.URL:
        """``url`` without userinfo and secret parameters, its query in its own order."""
        if url.userinfo:
            url = url.copy_with(userinfo=b"")
        if not any(name.lower() in self.lowered for name in url.params):
            return url
        # The query as it went out, less the secret parameters (no re-encoding).
        kept = [
            part
            for part in url.query.decode("ascii").split("&")
            if unquote_plus(part.partition("=")[0]).lower() not in self.lowered
        ]
        return url.copy_with(query="&".join(kept).encode("ascii") if kept else None)

    def key(self, method: str, url: str | httpx.URL) -> tuple[str, str]:
        """What a request is matched on: method and URL without secrets, query sorted."""
        return method.upper(), str(cache_url(httpx.URL(url), self.params))

    def credentials(self, request: httpx.Request) -> list[bytes]:
        """The credential values ``request`` carries, longest first, for scrubbing."""
        found: set[str] = set()
        for name, value in request.url.params.multi_items():
            if name.lower() in self.lowered:
                found.add(value)
        if request.url.userinfo:
            found.update(request.url.userinfo.decode("latin-1").split(":"))
        for name, value in request.headers.multi_items():
            if name.lower() in self.headers or name.lower() in _CREDENTIAL_HEADERS:
                found.add(value)
                _, _, token = value.partition(" ")
                if token:  # "Bearer <token>": the token alone too
                    found.add(token.strip())
        return sorted((v.encode() for v in found if len(v) >= _MIN_SECRET), key=len, reverse=True)


def _decoded(headers: httpx.Headers, body: bytes) -> tuple[bytes, bool]:
    """The body without its gzip or deflate coding, and whether it was decoded."""
    coding = headers.get("content-encoding", "").strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS), True
        if coding == "deflate":
            try:
                return zlib.decompress(body), True
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS), True
    except zlib.error:
        pass
    return body, False


def _scrub(data: bytes, credentials: Collection[bytes]) -> bytes:
    for value in credentials:
        data = data.replace(value, REDACTED.encode())
    return data


@attrs.frozen
class Sent:
    """What the recorder noted of a request before sending it on (a transport below may
    change the request). Strictly private."""

    at: float
    method: str
    url: str  # without credentials
    credentials: tuple[bytes, ...]

    @classmethod
    def of(cls, secrets: Secrets, request: httpx.Request, at: float) -> Sent:
        credentials = tuple(secrets.credentials(request))
        url = _scrub(str(secrets.strip_url(request.url)).encode(), credentials).decode()
        return cls(at, request.method.upper(), url, credentials)


def exchange(secrets: Secrets, sent: Sent, response: httpx.Response, body: bytes) -> Exchange:
    """The exchange as written to a cassette: no credential, no cookie, body decoded."""
    credentials = sent.credentials
    body, decoded = _decoded(response.headers, body)
    params = secrets.params
    joined: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        lowered = name.lower()
        if lowered in _DROPPED or lowered in secrets.headers:
            continue
        if decoded and lowered == "content-encoding":
            continue
        if lowered in _URL_HEADERS:
            value = redact_header_url(value, params)
        elif lowered == "link":
            value = redact_links(value, params)
        value = _scrub(value.encode(), credentials).decode("utf-8", "replace")
        names.setdefault(lowered, name)
        joined.setdefault(lowered, []).append(value)
    headers = [(names[k], ", ".join(v)) for k, v in joined.items()]
    headers.append(("content-length", str(len(body))))
    return Exchange(
        at=sent.at,
        method=sent.method,
        url=sent.url,
        status=response.status_code,
        headers=tuple(headers),
        body=_scrub(body, credentials),
    )


class Playback:
    """Recorded exchanges by request; each request's recordings answer in order, the
    last one again and again. Strictly private."""

    def __init__(self, secrets: Secrets, exchanges: Iterable[Exchange] = ()) -> None:
        self._secrets = secrets
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], list[Exchange]] = {}
        self._next: dict[tuple[str, str], int] = {}
        for recorded in exchanges:
            self.add(recorded)

    def add(self, recorded: Exchange) -> None:
        with self._lock:
            key = self._secrets.key(recorded.method, recorded.url)
            self._by_key.setdefault(key, []).append(recorded)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._by_key

    def take(self, key: tuple[str, str]) -> Exchange | None:
        with self._lock:
            found = self._by_key.get(key)
            if not found:
                return None
            n = self._next.get(key, 0)
            self._next[key] = n + 1
            return found[min(n, len(found) - 1)]

    def closest(self, key: tuple[str, str]) -> str | None:
        """The recorded request most like ``key``: the same method, host and path first,
        then the most query parameters in common (names and values, then names), then the
        most similar path."""
        import difflib

        method, url = key
        wanted = httpx.URL(url)
        pairs = set(wanted.params.multi_items())

        def score(candidate: tuple[str, str]) -> tuple[bool, bool, bool, int, int, float]:
            other = httpx.URL(candidate[1])
            found = set(other.params.multi_items())
            return (
                candidate[0] == method,
                other.host == wanted.host,
                other.path == wanted.path,
                len(found & pairs),
                len({k for k, _ in found} & {k for k, _ in pairs}),
                difflib.SequenceMatcher(None, wanted.path, other.path).ratio(),
            )

        with self._lock:
            keys = list(self._by_key)
            if not keys:
                return None
            best = max(keys, key=score)
            return f"{best[0]} {self._by_key[best][0].url}"  # as recorded
