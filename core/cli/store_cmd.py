"""`zerodeck store info` and `zerodeck store copy SRC DST`: what a store holds, and moving it between
SQLite and PostgreSQL (the logic is in store/copy.py; this is the command line around it)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, say
from zerodeck.core.errors import EXIT_OK, BadInput, OperationFailed
from zerodeck.core.i18n import _

_URL_HELP = _("a SQLAlchemy URL (sqlite:////path/zerodeck.db, postgresql+psycopg://user@host/db) "
              "or the path of a SQLite file")


def register(sub: Any) -> None:
    p = sub.add_parser("store", help=_("the store: what it holds, and copying it to another database"))
    inner = p.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    i = inner.add_parser("info", help=_("the store's URL (password masked), schema version and rows per table"))
    i.add_argument("url", nargs="?", metavar="URL",
                   help=_("the store to describe (default: ZERODECK_DB, else $ZERODECK_HOME/zerodeck.db); ")
                   + _URL_HELP)
    add_json_flag(i)
    i.set_defaults(handler=cmd_info)
    c = inner.add_parser(
        "copy", help=_("copy every table of one store into another (SQLite to PostgreSQL or back)"),
        description=_("Copy every table (runs, metric points, card peaks, telemetry, snapshots, queue, card "
                      "ledger, events, host cards) with their ids from SRC to DST in one transaction, set "
                      "PostgreSQL's id sequences after it and check the row counts. Both stores are "
                      "brought to this zerodeck's schema first. DST must be empty unless --replace is "
                      "given, which replaces its rows. Exit 0 copied, 1 the copy failed (nothing is "
                      "written), 2 bad input."))
    c.add_argument("src", metavar="SRC_URL", help=_("the store to copy from; ") + _URL_HELP)
    c.add_argument("dst", metavar="DST_URL", help=_("the store to copy into (created when missing); ") + _URL_HELP)
    c.add_argument("--replace", action="store_true", help=_("delete the rows DST already holds first"))
    add_json_flag(c)
    c.set_defaults(handler=cmd_copy)


def _url(value: str, what: str, *, must_exist: bool) -> str:
    """A URL as given, or a SQLite URL for a file path; exit 2 for what is neither."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError
    from zerodeck.store.urls import mask_url

    if "://" not in value:
        path = Path(value).expanduser()
        if must_exist and not path.is_file():
            raise BadInput(f"{what}: {value}: no such store file")
        return f"sqlite:///{path.absolute()}"
    try:
        parsed = make_url(value)
    except ArgumentError:
        raise BadInput(f"{what}: {mask_url(value)}: not a database URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BadInput(f"{what}: {mask_url(value)}: unsupported database {backend!r} (sqlite or postgresql)")
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise BadInput(f"{what}: {mask_url(value)}: use the psycopg driver (postgresql+psycopg://...)")
    if backend == "sqlite" and must_exist:
        from zerodeck.store.engine import sqlite_file

        file = sqlite_file(value)
        if file is not None and not file.is_file():
            raise BadInput(f"{what}: {value}: no such store file")
    return value


def cmd_info(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.store.api import Store
    from zerodeck.store.copy import store_info

    store = Store.open(_url(args.url, "URL", must_exist=True)) if args.url else cli_store()
    info = store_info(store)
    if args.json:
        emit(info.as_dict(), as_json=True)
        return EXIT_OK
    emit({"url": info.url, "backend": info.backend, "schema version": info.schema_version}, as_json=False)
    say("")
    emit([{"table": name, "rows": n} for name, n in info.counts.items()], as_json=False)
    return EXIT_OK


def cmd_copy(args: argparse.Namespace) -> int:
    from zerodeck.store.api import Store
    from zerodeck.store.copy import DestinationNotEmpty, copy_store

    src_url = _url(args.src, "SRC_URL", must_exist=True)
    dst_url = _url(args.dst, "DST_URL", must_exist=False)
    if src_url == dst_url:
        raise BadInput("SRC_URL and DST_URL name the same store")
    if dst_url.startswith("sqlite"):
        from zerodeck.store.engine import sqlite_file

        folder = sqlite_file(dst_url)
        if folder is not None:
            os.makedirs(folder.parent, exist_ok=True)
    start = time.monotonic()
    src, dst = Store.open(src_url), Store.open(dst_url)
    try:
        counts = copy_store(src, dst, replace=args.replace)
    except DestinationNotEmpty as exc:
        raise OperationFailed(str(exc)) from None
    seconds = round(time.monotonic() - start, 2)
    if args.json:
        from zerodeck.store.urls import mask_url

        emit({"src": mask_url(src_url), "dst": mask_url(dst_url), "tables": counts, "seconds": seconds},
             as_json=True)
    else:
        total = sum(counts.values())
        say(_("copied {rows} rows in {n} tables in {s} s; row counts match").format(
            rows=total, n=len(counts), s=seconds))
        emit([{"table": name, "rows": n} for name, n in counts.items()], as_json=False)
    return EXIT_OK
