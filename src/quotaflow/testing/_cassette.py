"""The cassette file: recorded exchanges as one JSON document. Strictly private.

See :mod:`quotaflow.testing` for the format.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx

__all__ = ["Exchange", "read_cassette"]

FORMAT = 1


@attrs.frozen
class Exchange:
    """One recorded request and the answer it got.

    Attributes:
        at: when the request was sent, in epoch seconds.
        method: the request method, upper case.
        url: the request URL without credentials (secret parameters and userinfo removed).
        status: the response status code.
        headers: the response headers, credentials and cookies scrubbed; repeated
            headers joined with ``", "``.
        body: the response body, decoded (no ``Content-Encoding``).

    .. versionadded:: 0.2
    """

    at: float
    method: str
    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def response(self, request: httpx.Request | None = None) -> httpx.Response:
        """A new :class:`httpx.Response` with the recorded status, headers and body."""
        return httpx.Response(
            self.status, headers=list(self.headers), content=self.body, request=request
        )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _to_json(exchange: Exchange) -> dict[str, Any]:
    response: dict[str, Any] = {"status": exchange.status, "headers": dict(exchange.headers)}
    try:
        response["body"] = exchange.body.decode("utf-8")
    except UnicodeDecodeError:
        response["body_base64"] = base64.b64encode(exchange.body).decode("ascii")
    return {
        "at": _iso(exchange.at),
        "request": {"method": exchange.method, "url": exchange.url},
        "response": response,
    }


def _from_json(entry: dict[str, Any]) -> Exchange:
    response = entry["response"]
    if "body_base64" in response:
        body = base64.b64decode(response["body_base64"])
    else:
        body = str(response.get("body", "")).encode("utf-8")
    return Exchange(
        at=_moment(entry["at"]),
        method=str(entry["request"]["method"]).upper(),
        url=str(entry["request"]["url"]),
        status=int(response["status"]),
        headers=tuple((str(k), str(v)) for k, v in response["headers"].items()),
        body=body,
    )


def read_cassette(path: str | os.PathLike[str]) -> list[Exchange]:
    """The exchanges recorded in the cassette at ``path``, in the order they happened.

    Args:
        path: a cassette file written by :class:`~quotaflow.testing.Recorder`.

    Raises:
        ValueError: the file is not a cassette of a format this version reads.

    .. versionadded:: 0.2
    """
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("quotaflow_cassette") != FORMAT:
        raise ValueError(f"{path}: not a quotaflow cassette (format {FORMAT})")
    return [_from_json(entry) for entry in document["exchanges"]]


def dumps(exchanges: Iterable[Exchange]) -> str:
    document = {"quotaflow_cassette": FORMAT, "exchanges": [_to_json(e) for e in exchanges]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_cassette(path: Path, exchanges: Sequence[Exchange]) -> None:
    """Replace the file at once (a reader never sees half a cassette)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(dumps(exchanges))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
