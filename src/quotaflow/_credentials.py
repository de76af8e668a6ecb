"""Credentials partition the cache. Strictly private.

Secrets are removed from a request before the cache sees it (``_secrets``), but the
answer may still depend on them: user B must never be answered with user A's private
body, and a revoked token must meet the origin's 401, not another token's stored 200.
So every credential a request carries (secret query parameters, URL userinfo, and the
secret headers: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, API-key
headers) goes into a *fingerprint*: HMAC-SHA256 under a random key kept with the state
(a file readable by its owner only, or one Redis key), never the raw value. The
fingerprint joins the cache key, so the storage key, the hot tier, single flight, the
stale choice and ``plan`` all tell credentials apart, and the quota ledger keeps one
account per credential (two keys of one API are two quotas).

An HMAC rather than a plain hash: a stored fingerprint of a short or guessable secret
cannot be brute-forced offline without the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger("quotaflow")

KEY_FILE = "fingerprint.key"
_KEY_BYTES = 32
# Memo entries kept per process (the raw values stay in memory only, like the request).
_MEMO = 4096


def load_key(directory: Path) -> bytes:
    """The fingerprint key of the state in ``directory``, created (0600) on first use.

    Processes sharing the directory share the key, so they share cache partitions. If
    the file cannot be written, this process uses a key of its own: its answers are
    then partitioned apart from everyone else's, which is safe.
    """
    path = directory / KEY_FILE
    try:
        found = _read(path)
    except OSError:
        found = None
    if found:
        return found
    key = secrets.token_bytes(_KEY_BYTES)
    # Written whole under a name of its own, then linked into place: a process starting
    # at the same moment finds either no key or a whole one, never one half written.
    draft = directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(draft, flags, 0o600), "wb") as handle:
            handle.write(key)
        try:
            os.link(draft, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system: made in place
            with os.fdopen(os.open(path, flags, 0o600), "wb") as handle:
                handle.write(key)
    except FileExistsError:
        # Another process linked its key first (or an unusable file is in the way).
        try:
            found = _read(path)
        except OSError:
            found = None
        if found:
            return found
        logger.warning("quotaflow: %s is unusable; fingerprints keyed for this process", path)
        return key
    except OSError as exc:
        logger.warning("quotaflow: cannot write %s (%s); keyed for this process", path, exc)
        return key
    finally:
        with contextlib.suppress(OSError):
            os.unlink(draft)
    return key


def _read(path: Path) -> bytes | None:
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link")
    data = path.read_bytes()
    return data if len(data) >= 16 else None


def new_key() -> bytes:
    return secrets.token_bytes(_KEY_BYTES)


class Fingerprints:
    """Keyed fingerprints of credentials, remembered per distinct set of values."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._memo: dict[tuple[tuple[str, str], ...], str] = {}

    def of(self, credentials: tuple[tuple[str, str], ...]) -> str:
        """The fingerprint of ``(name, value)`` pairs (names as the request spells
        them; order does not matter). Empty: ``""``."""
        if not credentials:
            return ""
        found = self._memo.get(credentials)
        if found is None:
            mac = hmac.new(self._key, digestmod=hashlib.sha256)
            for name, value in sorted((name.lower(), value) for name, value in credentials):
                mac.update(name.encode("utf-8", "surrogateescape") + b"\x00")
                mac.update(value.encode("utf-8", "surrogateescape") + b"\x00")
            found = mac.hexdigest()
            if len(self._memo) >= _MEMO:
                self._memo.clear()
            self._memo[credentials] = found
        return found


def short(fingerprint: str) -> str:
    """What status and errors show of a fingerprint: 8 hex digits, not reversible."""
    return fingerprint[:8]
