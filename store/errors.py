"""Errors of the store, importable without SQLAlchemy so the CLI can catch them cheaply.

A failing database must read as one line that names the file and says what to do: the engine turns
each SQLite failure it recognises (damaged file, read-only store, full disk, locked, unopenable) into
one of these, from the stdlib `sqlite3` error alone, so every caller — the CLI, the supervisor, the
TUI — gets the same words whichever query hit it first.
"""

from __future__ import annotations

import errno
import os
import shlex
import sqlite3
from pathlib import Path

# Below this much free space a store on that disk is treated as full: SQLite needs a few pages for
# its -wal and -shm files before it can even read a WAL database.
FULL_BELOW_BYTES = 1 << 20


class StoreError(Exception):
    """The database cannot be used as it is (a newer schema, an unreadable file)."""


class StoreDamaged(StoreError):
    """The file is not a sound SQLite database; it is left exactly as it was found."""


class StoreReadOnly(StoreError):
    """The store can be read but not written (read-only file, directory or file system, or a full disk)."""


class StoreBusy(StoreError):
    """Another process held the write lock past the busy timeout."""


class StoreUnreachable(StoreError):
    """The database server cannot be reached, or the connection to it dropped: it may come back, so a
    supervisor keeps its run going and writes later (the message never holds the password)."""


def unreachable_message(where: str, reason: str) -> str:
    return f"store unreachable: {where} ({_short(reason)})"


# What a server says when it is there but refuses us: retrying will not help, so not "unreachable".
_REFUSALS = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
             "permission denied", "authentication failed", "no password supplied")
# SQLSTATE classes of a server going away or not yet taking connections (08: connection exception;
# 57P01-57P03: admin / crash shutdown, cannot connect now).
_GONE_STATES = ("57P01", "57P02", "57P03")


def damaged_message(path: str, detail: str) -> str:
    """What to do about a damaged file: restore the newest migration backup, else salvage with .recover."""
    name = Path(path).name
    backups = sorted(Path(path).parent.glob(f"{name}.v*.bak"), key=lambda p: p.stat().st_mtime) \
        if Path(path).parent.is_dir() else []
    salvage = f'sqlite3 {shlex.quote(path)} ".recover" | sqlite3 recovered.db'
    advice = f"restore the backup {backups[-1].name} or run: {salvage}" if backups else f"recover it with: {salvage}"
    return f"{path}: the database file is damaged ({_short(detail)}); {advice} (the file was not changed)"


def why_read_only(path: str) -> str | None:
    """Why writes to `path` cannot succeed, found from the file system; None when nothing tells."""
    file = Path(path)
    folder = file.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if st.f_bavail * st.f_frsize < FULL_BELOW_BYTES:
        return "no space left on device"
    if file.exists() and not os.access(file, os.W_OK):
        return "the file is read-only"
    if not os.access(folder, os.W_OK):
        return "its directory is read-only"
    return None


def read_only_message(path: str, reason: str | None) -> str:
    if reason == "no space left on device":
        return f"{path}: cannot write: no space left on device; free some space there (read commands still work)"
    why = f" ({reason})" if reason else ""
    return f"{path}: cannot write: the store is read-only{why}; read commands still work"


def translate(orig: BaseException, path: str, read_only_reason: str | None = None) -> StoreError | None:
    """The StoreError for a driver error SQLite raised on `path`, or None for one that is not the store's fault.

    `read_only_reason` is set when the engine already had to open the store read-only, so a write
    refused there is explained by why it was opened that way.
    """
    if not isinstance(orig, sqlite3.Error):
        return None
    name = getattr(orig, "sqlite_errorname", "") or ""
    text = str(orig)
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or name.startswith("SQLITE_CORRUPT") or \
            "malformed" in text or "not a database" in text:
        return StoreDamaged(damaged_message(path, text))
    if name == "SQLITE_FULL" or "disk is full" in text:
        return StoreReadOnly(read_only_message(path, "no space left on device"))
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return StoreReadOnly(read_only_message(path, read_only_reason or why_read_only(path)))
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return StoreBusy(f"{path}: the database is locked by another process; try again in a moment")
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        reason = why_read_only(path)
        if reason:
            return StoreReadOnly(read_only_message(path, reason))
        return StoreError(f"{path}: disk I/O error ({_short(text)}); check the disk, then try again")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        reason = _unreadable(path) or why_read_only(path) or _missing_folder(path)
        why = f" ({reason})" if reason else ""
        return StoreError(f"{path}: cannot open the database file{why}; check the path and its permissions")
    return None


def translate_server(orig: BaseException, where: str, *, disconnect: bool = False) -> StoreError | None:
    """The StoreError for a database server's driver error (psycopg), or None when it is not one.

    A server that cannot be reached or dropped the connection is `StoreUnreachable`; one that answers
    but refuses us (wrong password, no such database or role) is a plain `StoreError`: waiting for it
    would not help."""
    module = type(orig).__module__ or ""
    if not module.startswith("psycopg"):
        return None
    state = getattr(orig, "sqlstate", None) or ""
    text = _server_reason(str(orig))
    if any(word in text for word in _REFUSALS) and not state.startswith("08"):
        if "permission denied for" in text:
            return None  # a missing GRANT on a table: an ordinary database error naming it
        return StoreError(f"{where}: cannot connect to the store ({_short(text)}); check the URL's "
                          f"user, password and database")
    if disconnect or state.startswith("08") or state in _GONE_STATES or (
            type(orig).__name__ == "OperationalError" and not state):
        return StoreUnreachable(unreachable_message(where, text))
    return None


def _server_reason(text: str) -> str:
    """The telling part of a libpq message: the last line without its address preamble."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    for line in lines:
        if "FATAL:" in line:
            return line.split("FATAL:", 1)[1].strip()
    line = lines[0]
    # 'connection failed: connection to server on socket "/x/.s.PGSQL.5432" failed: No such file ...'
    reason = line.rsplit("failed:", 1)[-1].strip() if "failed:" in line else line
    if any("Is the server running" in later for later in lines[1:]):
        reason += "; is the server running?"
    return reason


def _unreadable(path: str) -> str | None:
    file = Path(path)
    return "permission denied" if file.exists() and not os.access(file, os.R_OK) else None


def _missing_folder(path: str) -> str | None:
    return os.strerror(errno.ENOENT).lower() if not Path(path).parent.is_dir() else None


def _short(detail: str, limit: int = 120) -> str:
    flat = " ".join(detail.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def failure_line(exc: BaseException) -> str | None:
    """One line for a database error the engine did not recognise (the CLI's last resort before 'internal error').

    The engine marks every driver error it sees with the store's path; anything unmarked is not a
    store failure and stays an internal error.
    """
    path = getattr(exc, "zerodeck_store", None)
    if path is None:
        return None
    orig = getattr(exc, "orig", None) or exc
    return f"{path}: database error: {_short(str(orig))}"
