"""The exception hierarchy: one root, refusals are transport errors, ConfigError a ValueError."""

from __future__ import annotations

import httpx
import pytest
import respx

import quotaflow
import quotaflow.exceptions as qe
from quotaflow import Priority, Rate

from .conftest import BASE, api_profile

REFUSALS = [qe.RateLimited, qe.QuotaExhausted, qe.CircuitOpen, qe.StateUnavailable]


@pytest.mark.parametrize(
    ("cls", "transport", "value_error"),
    [
        (qe.QuotaflowError, False, False),
        (qe.ConfigError, False, True),
        (qe.RequestRefused, True, False),
        *[(cls, True, False) for cls in REFUSALS],
    ],
)
def test_isinstance_matrix(cls: type[Exception], transport: bool, value_error: bool) -> None:
    """Each class's place in the tree: its root, and which builtin/httpx bases it also has."""
    assert issubclass(cls, qe.QuotaflowError)
    assert issubclass(cls, Exception)
    assert issubclass(cls, httpx.TransportError) is transport
    assert issubclass(cls, httpx.HTTPError) is transport
    assert issubclass(cls, ValueError) is value_error
    assert issubclass(cls, qe.RequestRefused) is transport


def test_every_public_exception_is_in_the_matrix() -> None:
    """No exception in quotaflow.exceptions escapes the matrix above."""
    listed = {"QuotaflowError", "ConfigError", "RequestRefused", *(c.__name__ for c in REFUSALS)}
    assert set(qe.__all__) == listed


def test_refusals_carry_the_request() -> None:
    """A refusal built with a request exposes it as httpx errors do."""
    request = httpx.Request("GET", f"{BASE}/x")
    error = qe.RateLimited("wait", profile="p", retry_after=1.0, request=request)
    assert error.request is request
    assert str(error) == "wait"


def test_config_error_is_plain() -> None:
    """ConfigError takes only a message; it has no request."""
    error = qe.ConfigError("rates: must not be empty")
    assert str(error) == "rates: must not be empty"
    assert not hasattr(error, "_request") or getattr(error, "_request", None) is None


def test_bad_config_is_caught_as_value_error() -> None:
    """A bad setting at build time fits `except ValueError`, and is no transport error."""
    with pytest.raises(ValueError, match="hot_entries") as refused:
        quotaflow.make_client(hot_entries=-1)
    assert isinstance(refused.value, qe.ConfigError)
    assert not isinstance(refused.value, httpx.TransportError)


def test_bad_priority_is_caught_as_value_error() -> None:
    """A priority name that does not exist is refused as a ValueError naming it."""
    with pytest.raises(ValueError, match="urgent") as refused:
        Priority.parse("urgent")
    assert isinstance(refused.value, qe.ConfigError)


def test_refusal_is_caught_as_transport_error(stack, router: respx.Router, sleeps) -> None:
    """A refused request fits `except httpx.TransportError` and `except QuotaflowError`."""
    route = router.get(url__startswith=f"{BASE}/items").mock(
        return_value=httpx.Response(200, json={})
    )
    client = stack(profiles=[api_profile(rates=(Rate(1, per=1.0, burst=1),))])
    client.get(f"{BASE}/items/1")

    with pytest.raises(httpx.TransportError) as caught:
        client.get(f"{BASE}/items/2", extensions={"priority": "low"})
    with pytest.raises(qe.QuotaflowError) as again:
        client.get(f"{BASE}/items/3", extensions={"priority": "low"})

    assert isinstance(caught.value, qe.RateLimited)
    assert isinstance(again.value, qe.RateLimited)
    assert caught.value.request.url.path == "/items/2"
    assert route.call_count == 1
