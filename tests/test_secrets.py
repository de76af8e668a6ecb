"""Secrets reach upstream and nothing else: not cache keys, files, logs or ResponseInfo."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from .conftest import BASE, api_profile, files_under, info

KEY = "k3y-SECRET-0123456789abcdef"
TOKEN = "t0ken-SECRET-fedcba9876543210"
BEARER = "bearer-SECRET-aaaabbbbcccc"


def test_secrets_reach_upstream_only(stack, router: respx.Router, tmp_path, caplog) -> None:
    """Query and header secrets go upstream, never to disk, logs or the info."""
    caplog.set_level(logging.DEBUG)
    route = router.get(url__startswith=f"{BASE}/odds").respond(200, json={"ok": 1})
    client = stack()

    first = client.get(
        f"{BASE}/odds",
        params={"key": KEY, "api_key": KEY, "region": "us"},
        headers={"x-token": TOKEN, "authorization": f"Bearer {BEARER}"},
    )
    second = client.get(
        f"{BASE}/odds",
        params={"region": "us", "key": KEY, "api_key": KEY},
        headers={"x-token": TOKEN, "authorization": f"Bearer {BEARER}"},
    )
    client.close()

    sent = route.calls.last.request
    assert sent.url.params["key"] == KEY
    assert sent.headers["x-token"] == TOKEN
    assert sent.headers["authorization"] == f"Bearer {BEARER}"
    assert route.call_count == 1  # the same credentials share the stored answer
    assert info(second).cache == "hit"
    for secret in (KEY, TOKEN, BEARER):
        for path, content in files_under(tmp_path / "state").items():
            assert secret.encode() not in content, path
        assert secret not in caplog.text
        assert secret not in repr(info(first))
    assert "/odds?" in caplog.text  # httpx did log the request line, redacted


def test_secret_free_request_is_passed_unchanged(stack, router: respx.Router) -> None:
    """Without secrets the caller's request object goes through as it is."""
    route = router.get(f"{BASE}/plain").respond(200, json={})
    client = stack()

    client.get(f"{BASE}/plain", headers={"x-trace": "abc"})

    assert route.calls.last.request.headers["x-trace"] == "abc"


@pytest.mark.parametrize("name", ["apiKey", "access_token", "apikey"])
def test_default_secret_names_apply_to_every_host(stack, router, tmp_path, name) -> None:
    """Common credential parameters are kept out of the cache even for unprofiled hosts."""
    router.get(url__startswith="https://example.org/").respond(
        200, text="v", headers={"cache-control": "max-age=60"}
    )
    client = stack()

    client.get("https://example.org/data", params={name: KEY})
    client.close()

    assert all(KEY.encode() not in c for c in files_under(tmp_path / "state").values())


def test_redaction_filter_rewrites_httpx_log_lines() -> None:
    """The logging filter replaces secret values in URLs that httpx logs."""
    from quotaflow._secrets import RedactingFilter

    redacting = RedactingFilter()
    redacting.secrets.add("apiKey")
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: %s %s",
        (
            "GET",
            httpx.URL("https://a.test/x?apiKey=abc&q=1"),
        ),
        None,
    )

    redacting.filter(record)

    assert "abc" not in record.getMessage()
    assert "q=1" in record.getMessage()


def test_a_url_with_only_secrets_is_the_plain_url(stack, router) -> None:
    """/odds?key=... and /odds are one resource (no dangling "?"); on a profile that
    shares answers across credentials, one stored answer serves both."""
    route = router.get(f"{BASE}/only").respond(200, json={})
    seen: list[object] = []
    client = stack(profiles=[api_profile(shared_answers=True)], subscribers=[seen.append])

    client.get(f"{BASE}/only", params={"key": KEY})
    second = client.get(f"{BASE}/only")

    assert route.call_count == 1
    assert info(second).cache == "hit"
    assert {event.resource for event in seen if hasattr(event, "resource")} == {f"{BASE}/only"}
