"""The Odds API v4 for quotaflow: ``PLUGIN`` (``PROFILE`` and the odds history archive)
is published as the ``theoddsapi`` plugin.

:class:`OddsApi` (and :class:`AsyncOddsApi`) is a small typed client of the API that
works with any ``httpx.Client``, quotaflow's or not.
"""

from quotaflow.profiles import Plugin

from . import _cli
from ._client import AsyncOddsApi, OddsApi
from ._history import (
    ArchivedEvent,
    ArchiveStats,
    HistoryRow,
    OddsHistory,
    archive_path,
    archived_events,
    dropped_bodies,
    history,
    movement,
    start,
)
from ._models import (
    Bookmaker,
    Event,
    EventScore,
    Market,
    OddsApiError,
    Outcome,
    Score,
    Sport,
    Usage,
)
from ._profile import (
    PROFILE,
    OddsApiFreshness,
    OddsApiImmutable,
    classify,
    cost,
    normalize,
    read_quota,
    snapshot,
)

#: What the ``quotaflow.plugins`` entry point names: the profile, per client an
#: :class:`OddsHistory` in its state directory (``$QUOTAFLOW_ODDS_HISTORY_DAYS`` days,
#: default 90; 0 keeps no history), the ``quotaflow history`` command and the
#: ``quotaflow demo`` scenario.
PLUGIN = Plugin(
    name="theoddsapi",
    profiles=[PROFILE],
    start=start,
    commands=_cli.add_commands,
    demo=_cli.demo,
)

__all__ = [
    "PLUGIN",
    "PROFILE",
    "ArchiveStats",
    "ArchivedEvent",
    "AsyncOddsApi",
    "Bookmaker",
    "Event",
    "EventScore",
    "HistoryRow",
    "Market",
    "OddsApi",
    "OddsApiError",
    "OddsApiFreshness",
    "OddsApiImmutable",
    "OddsHistory",
    "Outcome",
    "Score",
    "Sport",
    "Usage",
    "archive_path",
    "archived_events",
    "classify",
    "cost",
    "dropped_bodies",
    "history",
    "movement",
    "normalize",
    "read_quota",
    "snapshot",
]
