"""A Redis connection that fails at a chosen step of a request (issue 13, case 11): the
cache lookup (the stored body in its reply), the store, the ledger, the lease. Faults are
injected in redis-py's own connections (the command as it is about to leave), for the
test's key prefix only, so every layer above (hishel's storage, quotaflow's guard) runs
as it does when the socket fails.

Each step keeps ``redis_fail``: ``"open"`` answers from upstream (local state and the
journal for the ledger), ``"closed"`` raises ``StateUnavailable``; no Redis or socket
error reaches the caller; and after a failure that client leaves Redis alone for
``RETRY_AFTER`` (one timeout per outage, not one per operation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
import redis.asyncio.connection
import redis.connection

import quotaflow
from quotaflow._state import _redis_guard

from ..conftest import BASE, info
from ..stub_server import REDIS_URL

URL = f"{BASE}/odds"

# A step: the fragments the packed command contains (its name and its key's kind). A
# fresh answer's lookup is one GET of its hit record, the body in the reply; a store is
# one script.
STEPS = {
    "lookup": (b"GET", b":cache:hit:"),
    "store": (b"EVALSHA", b":cache:entry:"),
    "ledger": (b":quota:",),
    "lease": (b":lease:",),
}
ERRORS: dict[str, Callable[[], BaseException]] = {
    "ConnectionRefusedError": lambda: ConnectionRefusedError(111, "Connection refused"),
    "ConnectionResetError": lambda: ConnectionResetError(104, "Connection reset by peer"),
    "redis.ConnectionError": lambda: redis.ConnectionError("Error 111 connecting"),
    "redis.TimeoutError": lambda: redis.TimeoutError("Timeout reading from socket"),
}
REDIS_ERRORS = ["ConnectionRefusedError", "redis.ConnectionError", "redis.TimeoutError"]
# The ledger and lease already kept redis_fail for RedisErrors (tests/test_redis.py);
# a bare socket error went through them.
BARE_ERRORS = ["ConnectionRefusedError", "ConnectionResetError"]


class Faults:
    """Fails the commands of one step under the test's prefix; counts what is sent."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix.encode()
        self.step: tuple[bytes, ...] | None = None
        self.error: Callable[[], BaseException] | None = None
        self.failed = 0
        self.sent: list[bytes] = []

    def arm(self, step: str, error: str) -> None:
        self.step, self.error = STEPS[step], ERRORS[error]

    def see(self, command: object) -> None:
        if isinstance(command, (bytes, str)):
            data = command.encode() if isinstance(command, str) else command
        else:
            data = b"".join(bytes(chunk) for chunk in command)  # type: ignore[attr-defined]
        if self._prefix not in data:
            return
        step, error = self.step, self.error
        if step is not None and error is not None and all(part in data for part in step):
            self.failed += 1
            raise error()
        self.sent.append(data)

    def count(self, fragment: bytes) -> int:
        return sum(fragment in data for data in self.sent)


@pytest.fixture
def faults(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Faults:
    found = Faults(prefix)
    # "Left alone for RETRY_AFTER" (5 s, steady time) must hold between two requests
    # however slow the machine: an hour here, so a stall cannot end it between them.
    monkeypatch.setattr(_redis_guard, "RETRY_AFTER", 3600.0)
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        found.see(command)
        return sync_send(self, command, check_health)

    async def asend(self, command, check_health=True):  # type: ignore[no-untyped-def]
        found.see(command)
        return await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", asend)
    return found


def expect(client, mode: str, url: str = URL):
    """The request's outcome under ``mode``: the answer (open) or StateUnavailable."""
    if mode == "open":
        response = client.get(url)
        assert response.status_code == 200
        assert response.json() == {"v": 1}
        return response
    with pytest.raises(quotaflow.StateUnavailable, match="redis_url"):
        client.get(url)
    return None


@pytest.mark.parametrize("error", REDIS_ERRORS)
@pytest.mark.parametrize("mode", ["open", "closed"])
@pytest.mark.parametrize("step", ["lookup"])
def test_a_stored_answer_redis_cannot_read(stack, router, prefix, faults, step, mode, error):
    """A stored, fresh answer (another client's, so this one's memory is empty) whose
    lookup fails (its body comes in the lookup's reply): open -> upstream; closed ->
    StateUnavailable; the next request sends no cache command (Redis is left alone for
    RETRY_AFTER)."""
    route = router.get(url__startswith=f"{BASE}/").respond(200, json={"v": 1})
    settings = {"redis_url": REDIS_URL, "redis_prefix": prefix, "redis_fail": mode}
    assert stack(**settings).get(URL).json() == {"v": 1}
    assert route.call_count == 1
    client = stack(**settings)
    faults.arm(step, error)

    response = expect(client, mode)

    assert faults.failed >= 1
    assert route.call_count == (2 if mode == "open" else 1)
    if response is not None:
        assert info(response).cache is not quotaflow.CacheStatus.HIT
    before = faults.count(b":cache:")
    expect(client, mode, f"{URL}/other")
    assert faults.count(b":cache:") == before


@pytest.mark.parametrize("error", REDIS_ERRORS)
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_answer_redis_cannot_store_is_delivered(stack, router, prefix, faults, mode, error):
    """The store fails: the paid answer is delivered under either mode, unstored (a
    new client goes upstream for it); the next request on this client sends no cache
    command and keeps redis_fail."""
    route = router.get(url__startswith=f"{BASE}/").respond(200, json={"v": 1})
    settings = {"redis_url": REDIS_URL, "redis_prefix": prefix, "redis_fail": mode}
    client = stack(**settings)
    faults.arm("store", error)

    assert client.get(URL).json() == {"v": 1}

    assert faults.failed >= 1
    before = faults.count(b":cache:")
    expect(client, mode, f"{URL}/other")
    assert faults.count(b":cache:") == before
    faults.step = None
    assert stack(**settings).get(URL).json() == {"v": 1}
    assert route.call_count == (3 if mode == "open" else 2)


@pytest.mark.parametrize("error", BARE_ERRORS)
@pytest.mark.parametrize("mode", ["open", "closed"])
@pytest.mark.parametrize("step", ["ledger", "lease"])
def test_a_bare_socket_error_in_the_ledger_or_lease(
    stack, router, prefix, faults, tmp_path, step, mode, error
):
    """A socket error redis-py did not wrap, on the ledger's or the lease's command:
    open -> the answer, its cost journalled and recorded when Redis answers; closed ->
    StateUnavailable before anything is sent."""
    route = router.get(url__startswith=f"{BASE}/").respond(200, json={"v": 1})
    settings = {"redis_url": REDIS_URL, "redis_prefix": prefix, "redis_fail": mode}
    client = stack(**settings)
    faults.arm(step, error)

    expect(client, mode)

    assert faults.failed >= 1
    assert route.call_count == (1 if mode == "open" else 0)
