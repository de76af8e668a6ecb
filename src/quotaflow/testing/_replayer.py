"""Answering from a cassette through respx, on a simulated clock, with the API's quota
emulated. Strictly private (public through :mod:`quotaflow.testing`)."""

from __future__ import annotations

import email.utils
import os
import random
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from .._clock import Clock
from .._profiles import ApiProfile, QuotaReading
from ._cassette import Exchange, read_cassette
from ._recorder import miss, profiles_or_plugins
from ._scrub import Playback, Secrets

if TYPE_CHECKING:
    import respx

__all__ = ["Replayer"]

# QuotaReading fields the emulation rewrites; "limit" (the plan's size) stays as recorded.
_FIELDS = ("remaining", "used", "last")
_PROBE = 918_273_645  # a number no real header holds
_PROBE_REQUEST = httpx.Request("GET", "https://probe.invalid/")


def _reading(profile: ApiProfile, response: httpx.Response) -> QuotaReading:
    try:
        return profile.read_quota(response)
    except Exception:  # a reader that needs a body shape the answer lacks: no reading
        return QuotaReading()


def quota_header_names(profile: ApiProfile, names: Iterable[str]) -> dict[str, str]:
    """Which of ``names`` the profile's ``read_quota`` reads as remaining, used or last.

    Found by asking it: each header alone, set to a number no real header holds, in an
    otherwise empty answer. So any reader works, a :class:`~quotaflow.QuotaHeaders` or
    a plugin's own function that reads headers.
    """
    found: dict[str, str] = {}
    for name in sorted(set(names)):
        probe = httpx.Response(
            200, headers={name: str(_PROBE)}, content=b"{}", request=_PROBE_REQUEST
        )
        reading = _reading(profile, probe)
        for field in _FIELDS:
            if field not in found and getattr(reading, field) == _PROBE:
                found[field] = name
    return found


@attrs.define
class _Account:
    """One profile's emulated quota. Strictly private."""

    used: int | None
    remaining: int | None
    spent: int = 0


class Replayer:
    """Answers requests from a cassette, moving a simulated clock along the recorded
    times and emulating each API's quota.

    A request is matched on its method and its URL without credentials, query order
    aside; each request's recordings answer in the order they were made (the last one
    again once they run out). An unrecorded request raises :class:`CassetteMiss`
    naming the closest recorded one.

    The clock (:attr:`clock`, a :class:`quotaflow.Clock`) starts at the first
    recording's time; each answer moves it on to its recording's time (never back);
    a ``sleep`` (a limiter's wait, a retry's backoff) moves it on without waiting. A
    recorded ``Date`` header is rewritten to the clock's time.

    The quota is emulated per profile: each answer costs what the API reported for it
    (the profile's ``read_quota`` ``last``), else, for a success of a profile that reads
    a quota or has one, the profile's ``cost(request)``. The profile's quota headers
    (remaining, used, last: found by asking its ``read_quota``; ``x-requests-*`` for
    The Odds API) are rewritten in each answer to the emulated account, which starts
    where the first recording of that profile says the account stood before it.
    Nothing is refused: like the API's own counter, remaining may go below zero.

    Use :meth:`transport` innermost in a quotaflow client::

        replayer = Replayer("tests/cassettes/odds.json")
        client = quotaflow.make_client(transport=replayer.transport(), clock=replayer.clock)

    Args:
        cassette: a cassette file, or the exchanges read from one.
        profiles: the APIs' profiles; default: those the installed plugins publish.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        cassette: str | os.PathLike[str] | Sequence[Exchange],
        *,
        profiles: Iterable[ApiProfile] | None = None,
    ) -> None:
        if isinstance(cassette, str | os.PathLike):
            self.name = str(cassette)
            self.exchanges = read_cassette(Path(cassette))
        else:
            self.name = "the cassette"
            self.exchanges = list(cassette)
        self._secrets = Secrets(profiles_or_plugins(profiles))
        self._playback = Playback(self._secrets, self.exchanges)
        self._lock = threading.Lock()
        self._now = min((e.at for e in self.exchanges), default=0.0)
        self._accounts: dict[str, _Account] = {}
        self._headers: dict[str, dict[str, str]] = {}
        self.answered = 0
        jitter = random.Random(0)

        async def asleep(seconds: float) -> None:
            self.advance(seconds)

        #: The simulated clock: pass it to ``make_client(clock=...)``.
        self.clock = Clock(time=self.now, sleep=self.advance, asleep=asleep, random=jitter.random)
        self._router: respx.Router | None = None

    def now(self) -> float:
        """The simulated time, in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the simulated clock on by ``seconds``."""
        with self._lock:
            self._now += max(0.0, seconds)

    @property
    def spent(self) -> int:
        """Credits the emulated APIs charged so far, all profiles together."""
        with self._lock:
            return sum(account.spent for account in self._accounts.values())

    def spent_by(self, profile: str) -> int:
        """Credits the emulated API of the profile named ``profile`` charged so far."""
        with self._lock:
            account = self._accounts.get(profile)
            return 0 if account is None else account.spent

    @property
    def router(self) -> respx.Router:
        """A :class:`respx.Router` answering every request from the cassette."""
        if self._router is None:
            try:
                import respx
            except ImportError as exc:  # pragma: no cover - respx is in the test extras
                raise ImportError(
                    "quotaflow.testing replays through respx: pip install 'quotaflow[testing]'"
                ) from exc
            router = respx.Router(assert_all_called=False)
            router.route(name="cassette").mock(side_effect=self.handler)
            self._router = router
        return self._router

    def transport(self) -> httpx.MockTransport:
        """An innermost transport for sync and async clients, over :attr:`router`."""
        return httpx.MockTransport(self.router.handler)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """The recorded answer to ``request``, quota headers and ``Date`` rewritten.

        Raises:
            CassetteMiss: nothing like ``request`` was recorded.
        """
        key = self._secrets.key(request.method, request.url)
        recorded = self._playback.take(key)
        if recorded is None:
            raise miss(self._playback, key, self.name)
        profile = self._secrets.registry.match(request.url)
        response = recorded.response(request)
        headers = self._header_names(profile)
        cost = self._cost(profile, response, headers)
        # Outside the lock (it reads the profile's headers); only a new account needs it.
        start = self._start(profile) if profile.name not in self._accounts else (None, None)
        with self._lock:
            self.answered += 1
            self._now = max(self._now, recorded.at)
            now = self._now
            account = self._accounts.get(profile.name)
            if account is None:
                account = self._accounts[profile.name] = _Account(*start)
            account.spent += cost
            if account.used is not None:
                account.used += cost
            if account.remaining is not None:
                account.remaining -= cost
            values: dict[str, Any] = {
                "remaining": account.remaining,
                "used": account.used,
                "last": cost,
            }
        for field, name in headers.items():
            if name in response.headers and values[field] is not None:
                response.headers[name] = str(values[field])
        if "date" in response.headers:
            response.headers["date"] = email.utils.formatdate(now, usegmt=True)
        return response

    @staticmethod
    def _cost(profile: ApiProfile, response: httpx.Response, headers: dict[str, str]) -> int:
        """What the API charged for ``response``: what it reported, else the profile's
        estimate for a success of an API that reports or has a quota, else nothing."""
        reading = _reading(profile, response)
        if reading.last is not None:
            return reading.last
        if response.is_success and (headers or profile.quota is not None):
            return profile.cost(response.request)
        return 0

    def _start(self, profile: ApiProfile) -> tuple[int | None, int | None]:
        """(used, remaining) before the first recording of ``profile`` that reports them."""
        headers = self._header_names(profile)
        for recorded in self.exchanges:
            request = httpx.Request(recorded.method, recorded.url)
            if self._secrets.registry.match(request.url) is not profile:
                continue
            response = recorded.response(request)
            reading = _reading(profile, response)
            if reading.used is None and reading.remaining is None:
                continue
            cost = self._cost(profile, response, headers)
            return (
                None if reading.used is None else reading.used - cost,
                None if reading.remaining is None else reading.remaining + cost,
            )
        return None, None

    def _header_names(self, profile: ApiProfile) -> dict[str, str]:
        with self._lock:
            found = self._headers.get(profile.name)
        if found is None:
            names = {
                name
                for recorded in self.exchanges
                if self._secrets.registry.match(httpx.URL(recorded.url)) is profile
                for name, _ in recorded.headers
            }
            found = quota_header_names(profile, names)
            with self._lock:
                self._headers[profile.name] = found
        return found
