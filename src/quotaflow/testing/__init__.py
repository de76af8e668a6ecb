"""Record real traffic once, replay it in tests with the API's quota simulated.

.. versionadded:: 0.2

Record with :class:`Recorder` innermost in a quotaflow client (only what really goes
out is recorded, credentials and cookies scrubbed)::

    from quotaflow.testing import Recorder

    recorder = Recorder(httpx.HTTPTransport(), "tests/cassettes/odds.json")
    with quotaflow.make_client(transport=recorder) as client:
        client.get(...)

Replay with :class:`Replayer` (a :class:`respx.Router` over the cassette, a simulated
clock, the quota headers rewritten to an emulated account), most simply through the
``quotaflow_replay`` pytest fixture or a :class:`ReplaySession`::

    def test_scraper(quotaflow_replay):
        replay = quotaflow_replay("tests/cassettes/odds.json")
        scrape(replay.client())
        assert replay.spent == 14  # credits
        scrape(replay.client())
        assert replay.spent == 14  # the second run came from quotaflow's cache

Replaying needs respx: ``pip install 'quotaflow[testing]'``.

The cassette format (version 1): one UTF-8 JSON file, indented, so that a re-recording
shows as a readable diff::

    {
      "quotaflow_cassette": 1,
      "exchanges": [
        {
          "at": "2026-10-25T10:00:00.000Z",
          "request": {"method": "GET", "url": "https://api.example.com/v1/x?a=1"},
          "response": {
            "status": 200,
            "headers": {"content-type": "application/json", "content-length": "9"},
            "body": "{\\"ok\\": 1}"
          }
        }
      ]
    }

``at`` is when the request was sent (ISO 8601 UTC, milliseconds). ``url`` has no
credentials. ``headers`` keep the server's names; a repeated header is joined with
``", "``; ``content-length`` is the stored body's. ``body`` is the body decoded
(gzip and deflate undone) when it is UTF-8 text; otherwise ``body_base64`` holds it.
Exchanges are in the order they happened; a request recorded twice answers with its
recordings in that order.
"""

from __future__ import annotations

from ._cassette import Exchange, read_cassette
from ._recorder import CassetteMiss, Recorder, RecordMode
from ._replayer import Replayer
from ._session import ReplaySession

__all__ = [
    "CassetteMiss",
    "Exchange",
    "RecordMode",
    "Recorder",
    "ReplaySession",
    "Replayer",
    "read_cassette",
]
