"""Recording a journal entry (``_journal``) in the ledger, exactly once. Strictly private."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._backend import Unreachable
from ._books import Books, settle_books, snapshot
from ._journal import Entry

if TYPE_CHECKING:
    from ._ledger import Ledger


def replayed(ledger: Ledger, entry: Entry, now: float) -> bool:
    """Whether ``entry`` is done with: recorded now or before (its id is stored with
    it), or of a period that has ended; False: keep it (the store cannot answer, or
    this process does not know the profile yet: another may)."""
    profile = ledger._profiles.get(entry.profile)
    if profile is None or profile.quota is None:
        return False
    if snapshot(profile, None, entry.at).start != snapshot(profile, None, now).start:
        return True  # its count no longer matters
    seen: list[Books] = []

    def change(books: Books) -> None:
        if books.replayed:
            return
        ledger._seed(entry.account, books)
        seen.append(books)
        settle_books(
            books,
            profile,
            entry.ticket,
            entry.spent,
            entry.reading,
            now,
            estimate=entry.spent,
            exhausted=entry.exhausted,
            warned=ledger._warned,
        )
        ledger._remember(entry.account, books)

    try:
        ledger._store(entry.account, change, once=entry.id)
    except Unreachable:
        return False
    if seen and (row := seen[-1].row) is not None:
        ledger._seen[entry.account] = row
    return True
