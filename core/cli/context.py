"""The CLI process's one Store: made from the environment once, at the entry point, and passed down.

`ZERODECK_DB` (any SQLAlchemy URL) or `$ZERODECK_HOME/zerodeck.db` name it; nothing below the CLI
reads those variables. Handlers that only plan or read recipes never call this, so they never import
SQLAlchemy or create a database.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerodeck.core.launch.acquire import LocalHost
    from zerodeck.store.api import Store

_STORE: Store | None = None
_QUICK_EXIT = False


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


def exit_quickly() -> None:
    """Let this command's process leave without tearing its interpreter down once `main` returns.

    Freeing SQLAlchemy's and pydantic's objects one by one at exit takes 0.1-0.2 s here, longer than
    drawing a chart. Only commands whose work is done by then opt in: their file written and closed
    (never left to a finalizer) and their output printed.
    """
    global _QUICK_EXIT
    _QUICK_EXIT = True


def leave(code: int) -> None:
    """Exit with `code`: at once where the command opted in and no other thread is still working
    (after flushing the output, closing the store's connections and running the exit handlers),
    else the usual way."""
    if not _QUICK_EXIT or threading.active_count() > 1:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: what the usual exit would also lose
            stream.flush()
    if "zerodeck.store.engine" in sys.modules:
        from zerodeck.store.engine import reset_engines

        reset_engines()  # a database server sees its connections closed, not dropped
    atexit._run_exitfuncs()  # logging's flush and tempfile's cleanup still run
    os._exit(code)
