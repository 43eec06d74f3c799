"""The CLI process's one Store: made from the environment once, at the entry point, and passed down.

`ZERODECK_DB` (any SQLAlchemy URL) or `$ZERODECK_HOME/zerodeck.db` name it; nothing below the CLI
reads those variables. Handlers that only plan or read recipes never call this, so they never import
SQLAlchemy or create a database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerodeck.core.launch.acquire import LocalHost
    from zerodeck.store.api import Store

_STORE: Store | None = None


def cli_store() -> Store:
    """The store of this process, opened (and created or migrated) on first use."""
    global _STORE
    if _STORE is None:
        from zerodeck.store.api import Store

        _STORE = Store.from_environment()
    return _STORE


def cli_host() -> LocalHost:
    """This host as every launch of the process places runs on it: ZERODECK_CARDS and
    ZERODECK_CPU_CARDS read here (a bad value is exit 2 naming the variable) and its card source."""
    from zerodeck.core.launch.acquire import local_host

    return local_host(os.environ)


def existing_store() -> Store | None:
    """The store only if one exists already: planning and data inspection never create one."""
    from zerodeck.store.location import data_home

    if _STORE is None and not os.environ.get("ZERODECK_DB") and not (data_home() / "zerodeck.db").exists():
        return None
    try:
        return cli_store()
    except Exception:  # an unreadable store: plan without calibration rather than fail
        return None


def server_store_named() -> bool:
    """Whether ZERODECK_DB names a database server (not a SQLite file)."""
    url = os.environ.get("ZERODECK_DB", "")
    return bool(url) and not url.startswith("sqlite")


def forget_store() -> None:
    """Tests switch ZERODECK_HOME between in-process `main()` calls."""
    global _STORE
    _STORE = None
