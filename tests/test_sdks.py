"""Real SDKs given a quotaflow client: openai 2.x and anthropic 0.x (the last lines that take
an ``httpx.Client``), sync and async, against a local stub that counts what reaches it.

Two API keys never share an answer, a streamed GET delivers its first bytes at once, the
SDK's retries are not multiplied by quotaflow's (``retries=False``), and POSTs pass
through as with bare httpx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio.from_thread
import attrs
import httpx
import openai
import pytest

import quotaflow

from .stub_server import SdkStub, StreamServer

SDKS: dict[str, Any] = {"openai": openai, "anthropic": anthropic}
CLASSES = {
    ("openai", "sync"): openai.OpenAI,
    ("openai", "async"): openai.AsyncOpenAI,
    ("anthropic", "sync"): anthropic.Anthropic,
    ("anthropic", "async"): anthropic.AsyncAnthropic,
}
# Where each SDK's model shows the key the stub saw (SdkStub fills both fields).
OWNER = {"openai": "owned_by", "anthropic": "display_name"}
# A stub host the tests give a profile, so that quotaflow's own retries apply. The
# breaker stays out of it: nine 503s in a row would open the circuit.
LOCAL = quotaflow.ApiProfile(name="local", hosts=("127.0.0.1",), retries=2, breaker_threshold=0)


class Sdk:
    """One SDK, sync or async, on quotaflow clients; each call runs the same way in both
    modes (the async one through a blocking portal)."""

    def __init__(self, name: str, mode: str, portal: Any, state_dir: Path) -> None:
        self.name = name
        self.mode = mode
        self.module = SDKS[name]
        self._portal = portal
        self._state_dir = state_dir
        self._http_clients: list[Any] = []

    def client(
        self, base: str, key: str = "key-a", *, max_retries: int = 0, **quotaflow_kwargs: Any
    ) -> Any:
        """The SDK's client on a new quotaflow client (all sharing one state directory)."""
        settings: dict[str, Any] = {
            "plugins": False,
            "config": False,
            "state_dir": self._state_dir,
            **quotaflow_kwargs,
        }
        if self.mode == "sync":
            http_client: Any = quotaflow.make_client(**settings)
        else:
            http_client = quotaflow.make_async_client(**settings)
        return self.wrap(http_client, base, key, max_retries)

    def bare(self, base: str, key: str = "key-a") -> Any:
        """The SDK's client on a bare httpx client, to compare with."""
        http_client = httpx.Client() if self.mode == "sync" else httpx.AsyncClient()
        return self.wrap(http_client, base, key, 0)

    def wrap(self, http_client: Any, base: str, key: str, max_retries: int) -> Any:
        self._http_clients.append(http_client)
        # OpenAI's base URL ends in /v1; Anthropic's paths start with it.
        base_url = f"{base}/v1" if self.name == "openai" else base
        return CLASSES[self.name, self.mode](
            api_key=key, base_url=base_url, max_retries=max_retries, http_client=http_client
        )

    def run(self, action: Callable[[Any], Any], client: Any) -> Any:
        """``action(client)``; awaited if the client is async."""
        if self.mode == "sync":
            return action(client)
        return self._portal.call(action, client)

    def create(self, client: Any) -> Any:
        """The SDK's main POST (a chat completion, a message), raw response."""
        messages = [{"role": "user", "content": "hi"}]
        if self.name == "openai":
            return self.run(
                lambda c: c.chat.completions.with_raw_response.create(model="m", messages=messages),
                client,
            )
        return self.run(
            lambda c: c.messages.with_raw_response.create(
                model="m", max_tokens=16, messages=messages
            ),
            client,
        )

    def start_stream(self, client: Any) -> Any:
        """The SDK's main POST with ``stream=True`` (server-sent events); awaitable if async."""
        messages = [{"role": "user", "content": "hi"}]
        if self.name == "openai":
            return client.chat.completions.create(model="m", messages=messages, stream=True)
        return client.messages.create(model="m", max_tokens=16, messages=messages, stream=True)

    def describe(self, event: Any) -> str:
        """One streamed event, in short: the text of a chunk, the type of a message event."""
        if self.name == "openai":
            return str(event.choices[0].delta.content)
        return str(event.type)

    def close(self) -> None:
        for http_client in self._http_clients:
            if self.mode == "sync":
                http_client.close()
            else:
                self._portal.call(http_client.aclose)


@pytest.fixture(params=sorted(CLASSES), ids="-".join)
def sdk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sdk]:
    """Each SDK, sync and async."""
    name, mode = request.param
    with anyio.from_thread.start_blocking_portal() as portal:
        harness = Sdk(name, mode, portal, tmp_path / "state")
        yield harness
        harness.close()


def cache(raw: Any) -> str:
    """How quotaflow answered the SDK call whose raw response this is."""
    found = raw.http_response.extensions["quotaflow"]
    assert isinstance(found, quotaflow.ResponseInfo)
    return str(found.cache)


# Credentials partition the cache --------------------------------------------------------


def test_two_api_keys_never_share_an_answer(sdk: Sdk) -> None:
    """Key A, key B, key A, key B for a cacheable GET: two upstream calls, and each key
    only ever gets the answer fetched with it."""
    retrieve = lambda c: c.models.with_raw_response.retrieve("m")  # noqa: E731
    with SdkStub() as stub:
        a, b = sdk.client(stub.base, "key-a"), sdk.client(stub.base, "key-b")

        calls = [sdk.run(retrieve, client) for client in (a, b, a, b)]

    owners = [getattr(call.parse(), OWNER[sdk.name]) for call in calls]
    assert owners == ["key-a", "key-b", "key-a", "key-b"]
    assert [cache(call) for call in calls] == ["miss", "miss", "hit", "hit"]
    assert stub.hits == {"GET /v1/models/m": 2}


# Streaming ------------------------------------------------------------------------------


def test_a_streamed_get_delivers_its_first_bytes_at_once(sdk: Sdk) -> None:
    """The SDK's streaming-response API over a GET: the first chunk reaches the caller
    before the origin has sent the rest (it waits for the test to have seen the first);
    the whole body is stored on the way, and the next call is a hit with the same bytes."""

    def first_then_rest(client: Any) -> tuple[bool, bytes, str]:
        with client.with_streaming_response.models.list() as response:
            chunks = response.iter_bytes()
            first = next(chunks)
            early = not server.rest_sent.is_set()
            server.release.set()
            return early, first + b"".join(chunks), cache(response)

    async def afirst_then_rest(client: Any) -> tuple[bool, bytes, str]:
        async with client.with_streaming_response.models.list() as response:
            chunks = response.iter_bytes()
            first = await chunks.__anext__()
            early = not server.rest_sent.is_set()
            server.release.set()
            return early, first + b"".join([chunk async for chunk in chunks]), cache(response)

    with StreamServer() as server:
        client = sdk.client(server.base)
        action = first_then_rest if sdk.mode == "sync" else afirst_then_rest
        early, body, first_cache = sdk.run(action, client)
        _, again, second_cache = sdk.run(action, client)

    assert early, "the first chunk only came once the origin had sent the whole body"
    assert len(body) == 2000
    assert (first_cache, second_cache) == ("miss", "hit")
    assert again == body
    assert server.hits["/v1/models"] == 1


# Retries --------------------------------------------------------------------------------


def _retrieve_unavailable(sdk: Sdk, **quotaflow_kwargs: Any) -> int:
    """An SDK with max_retries=2 asks for a model the stub answers 503 (Retry-After 0, so
    neither retry loop sleeps); the number of upstream calls."""
    with SdkStub() as stub:
        client = sdk.client(stub.base, max_retries=2, profiles=[LOCAL], **quotaflow_kwargs)
        with pytest.raises(sdk.module.InternalServerError):
            sdk.run(lambda c: c.models.retrieve("unavailable"), client)
    return stub.hits["GET /v1/models/unavailable"]


def test_sdk_retries_are_not_multiplied_with_retries_false(sdk: Sdk) -> None:
    """make_client(retries=False) under an SDK that retries itself: one SDK attempt is
    one upstream call, so max_retries=2 makes exactly 3."""
    assert _retrieve_unavailable(sdk, retries=False) == 3


def test_without_retries_false_quotaflows_retries_multiply(sdk: Sdk) -> None:
    """The knob matters: with the profile's own retries=2, each of the SDK's 3 attempts
    becomes 3 upstream calls."""
    assert _retrieve_unavailable(sdk) == 9


def test_quotaflows_refusals_reach_the_sdk_as_its_connection_error(sdk: Sdk) -> None:
    """A request the quota refuses never goes upstream; the SDK reports it as its
    connection error (it retries those: max_retries=0 here), with the QuotaExhausted as
    the cause."""
    quota = attrs.evolve(LOCAL, quota=quotaflow.Quota(2))  # 80% for NORMAL: one call
    with SdkStub() as stub:
        client = sdk.client(stub.base, profiles=[quota], retries=False)
        sdk.run(lambda c: c.models.retrieve("m"), client)
        with pytest.raises(sdk.module.APIConnectionError) as refused:
            sdk.run(lambda c: c.models.retrieve("other"), client)

    assert isinstance(refused.value.__cause__, quotaflow.QuotaExhausted)
    assert stub.hits == {"GET /v1/models/m": 1}


# POST passes through --------------------------------------------------------------------


def test_posts_pass_through_as_with_bare_httpx(sdk: Sdk) -> None:
    """Two identical POSTs (cacheable answers, even) make two upstream calls; the
    requests the origin sees and the answers the SDK gets are those of bare httpx."""

    def twice(client: Any) -> list[Any]:
        return [sdk.create(client) for _ in range(2)]

    with SdkStub() as mine, SdkStub() as theirs:
        ours = twice(sdk.client(mine.base))
        bare = twice(sdk.bare(theirs.base))

    assert mine.hits == theirs.hits
    assert sum(mine.hits.values()) == 2
    for raw, plain in zip(ours, bare, strict=True):
        assert raw.http_response.content == plain.http_response.content
        assert raw.parse() == plain.parse()
        assert cache(raw) == "miss"

    def request(seen: tuple[str, str, dict[str, str], bytes]) -> Any:
        # The Host names each stub's port; header order is not compared (quotaflow puts
        # the credential headers it set aside back last).
        method, path, headers, body = seen
        return method, path, {k: v for k, v in headers.items() if k != "host"}, body

    assert [request(seen) for seen in mine.seen] == [request(seen) for seen in theirs.seen]


def test_a_streamed_post_arrives_event_by_event(sdk: Sdk) -> None:
    """``stream=True`` (server-sent events over POST): the first event reaches the SDK
    before the origin has sent the rest; one upstream call."""

    def first_then_rest(client: Any) -> tuple[bool, list[str]]:
        events = iter(sdk.start_stream(client))
        first = next(events)
        early = not stub.rest_sent.is_set()
        stub.release.set()
        return early, [sdk.describe(event) for event in (first, *events)]

    async def afirst_then_rest(client: Any) -> tuple[bool, list[str]]:
        events = (await sdk.start_stream(client)).__aiter__()
        first = await events.__anext__()
        early = not stub.rest_sent.is_set()
        stub.release.set()
        return early, [sdk.describe(first), *[sdk.describe(event) async for event in events]]

    with SdkStub() as stub:
        client = sdk.client(stub.base)
        early, events = sdk.run(first_then_rest if sdk.mode == "sync" else afirst_then_rest, client)

    assert early, "the first event only came once the origin had sent them all"
    expected = {
        "openai": ["one", "two"],
        "anthropic": ["message_start", "content_block_delta", "message_stop"],
    }
    assert events == expected[sdk.name]
    assert sum(stub.hits.values()) == 1
