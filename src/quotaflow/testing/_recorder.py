"""Recording real exchanges to a cassette, below quotaflow's stack. Strictly private
(public through :mod:`quotaflow.testing`)."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

import httpx

from .._clock import Clock
from .._plugins import resolve_plugins
from .._profiles import ApiProfile
from ._cassette import Exchange, read_cassette, write_cassette
from ._scrub import Playback, Secrets, Sent, exchange

__all__ = ["CassetteMiss", "RecordMode", "Recorder"]

RecordMode = Literal["once", "new_episodes", "all"]
_MODES = ("once", "new_episodes", "all")


class CassetteMiss(LookupError):
    """A request that the cassette has no recording of.

    The message names the request and the closest recorded one, both without
    credentials. It is not an :class:`httpx.TransportError` on purpose: quotaflow's
    stack retries those and may answer them from its cache, and a request missing from
    a cassette is a mistake in the test that must surface.

    .. versionadded:: 0.2
    """


def miss(playback: Playback, key: tuple[str, str], cassette: str) -> CassetteMiss:
    closest = playback.closest(key)
    hint = f"; closest recorded: {closest}" if closest else "; it records nothing"
    return CassetteMiss(f"{key[0]} {key[1]} is not recorded in {cassette}{hint}")


def profiles_or_plugins(profiles: Iterable[ApiProfile] | None) -> list[ApiProfile]:
    """The given profiles, else those the installed plugins publish."""
    if profiles is not None:
        return list(profiles)
    registry, _ = resolve_plugins(None, True)
    return list(registry.profiles)


class _Tee(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Passes a body on chunk by chunk as it is read, keeping a copy; once it has been
    read to the end and closed, hands the whole copy to ``done``. Strictly private."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, done: Callable[[bytes], None]
    ) -> None:
        self._stream = stream
        self._done: Callable[[bytes], None] | None = done
        self._chunks: list[bytes] = []
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        assert isinstance(self._stream, httpx.SyncByteStream)
        for chunk in self._stream:
            self._chunks.append(chunk)
            yield chunk
        self._complete = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert isinstance(self._stream, httpx.AsyncByteStream)
        async for chunk in self._stream:
            self._chunks.append(chunk)
            yield chunk
        self._complete = True

    def close(self) -> None:
        assert isinstance(self._stream, httpx.SyncByteStream)
        try:
            self._stream.close()
        finally:
            self._finish()

    async def aclose(self) -> None:
        assert isinstance(self._stream, httpx.AsyncByteStream)
        try:
            await self._stream.aclose()
        finally:
            self._finish()

    def _finish(self) -> None:
        # A body closed before its end is not recorded: replaying half of it would lie.
        done, self._done = self._done, None
        if done is not None and self._complete:
            done(b"".join(self._chunks))


class Recorder(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A transport that records what ``next_transport`` answers to a cassette.

    Put it innermost, below quotaflow's stack, so that only what really goes out is
    recorded (cache hits and refused requests never reach it)::

        recorder = Recorder(httpx.HTTPTransport(), "tests/cassettes/odds.json")
        with quotaflow.make_client(transport=recorder) as client: ...

    (``httpx.AsyncHTTPTransport()`` under :func:`quotaflow.make_async_client`.) Each
    exchange is written when its body has been read to the end and closed, so streamed
    bodies still reach the caller chunk by chunk; the file is rewritten whole after
    each one. A body closed before its end is not recorded.

    Credentials never reach the file: secret query parameters (quotaflow's defaults
    and every profile's ``secret_params``) and URL userinfo are removed from the URL;
    ``Set-Cookie``, ``Authorization``, ``Cookie`` and the profiles' ``secret_headers``
    are dropped from the response headers; ``Location``, ``Content-Location`` and
    ``Link`` are redacted; and any credential value the request carried is replaced
    by ``[secret]`` wherever it appears in the answer.

    Args:
        next_transport: where requests really go (usually ``httpx.HTTPTransport()``).
        cassette: the cassette file.
        mode: ``"once"`` (the default): record if the file does not exist yet; if it
            does, answer from it and raise :class:`CassetteMiss` for anything else.
            ``"new_episodes"``: answer what is recorded from the file, send and append
            what is not. ``"all"``: send everything and record it anew (the file
            starts empty).
        profiles: whose secret parameters and headers to scrub; default: the
            profiles the installed plugins publish.
        clock: where the time of each exchange is read.

    Raises:
        ValueError: ``mode`` is not one of the three.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        next_transport: httpx.BaseTransport | httpx.AsyncBaseTransport,
        cassette: str | os.PathLike[str],
        *,
        mode: RecordMode = "once",
        profiles: Iterable[ApiProfile] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode: expected one of {', '.join(_MODES)}, got {mode!r}")
        self.next_transport = next_transport
        self.path = Path(cassette)
        self.mode = mode
        self._clock = clock or Clock()
        self._secrets = Secrets(profiles_or_plugins(profiles))
        existing = self.path.exists() and mode != "all"
        self._replay_only = mode == "once" and existing
        self._exchanges: list[Exchange] = read_cassette(self.path) if existing else []
        self._playback = Playback(self._secrets, self._exchanges)
        self._lock = threading.Lock()

    @property
    def exchanges(self) -> list[Exchange]:
        """What the cassette holds now (recorded earlier and in this session)."""
        with self._lock:
            return list(self._exchanges)

    def _recorded(self, request: httpx.Request) -> httpx.Response | None:
        if self.mode == "all":
            return None
        key = self._secrets.key(request.method, request.url)
        found = self._playback.take(key)
        if found is None and self._replay_only:
            raise miss(self._playback, key, str(self.path))
        return None if found is None else found.response(request)

    def _tee(self, request: httpx.Request, sent: Sent, response: httpx.Response) -> httpx.Response:
        def done(body: bytes) -> None:
            recorded = exchange(self._secrets, sent, response, body)
            with self._lock:
                self._exchanges.append(recorded)
                write_cassette(self.path, self._exchanges)
            if self.mode != "all":
                self._playback.add(recorded)

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, done),
            extensions=response.extensions,
            request=request,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if (found := self._recorded(request)) is not None:
            return found
        if not isinstance(self.next_transport, httpx.BaseTransport):
            raise TypeError("Recorder: a sync client needs a sync next_transport")
        sent = Sent.of(self._secrets, request, self._clock.time())
        return self._tee(request, sent, self.next_transport.handle_request(request))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (found := self._recorded(request)) is not None:
            return found
        if not isinstance(self.next_transport, httpx.AsyncBaseTransport):
            raise TypeError("Recorder: an async client needs an async next_transport")
        sent = Sent.of(self._secrets, request, self._clock.time())
        return self._tee(request, sent, await self.next_transport.handle_async_request(request))

    def close(self) -> None:
        if isinstance(self.next_transport, httpx.BaseTransport):
            self.next_transport.close()

    async def aclose(self) -> None:
        if isinstance(self.next_transport, httpx.AsyncBaseTransport):
            await self.next_transport.aclose()
