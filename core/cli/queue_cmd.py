"""`zerodeck queue add`, `zerodeck queue`, `zerodeck runner`: the persistent run queue."""

from __future__ import annotations

import argparse
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err
from zerodeck.core.errors import EXIT_OK
from zerodeck.core.i18n import _

QUEUE_COLUMNS = ["id", "recipe", "state", "run_id", "added_at", "reason"]


def register(sub: Any) -> None:
    p = sub.add_parser("queue", help=_("the run queue: list it, or `queue add RECIPE...`"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_list)
    qs = p.add_subparsers(dest="queue_command", metavar="COMMAND")
    add = qs.add_parser("add", help=_("append recipes (files or catalog names) to the queue"))
    add.add_argument("recipes", nargs="+", metavar="RECIPE")
    add_json_flag(add)
    add.set_defaults(handler=cmd_add)

    r = sub.add_parser("runner", help=_("run queued recipes one after another"))
    r.add_argument("--once", action="store_true", help=_("run what is queued, then exit"))
    r.set_defaults(handler=cmd_runner)


def cmd_add(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.cli.run_cmd import expand_refs
    from zerodeck.core.launch import queue

    refs = expand_refs(args.recipes)  # a bad reference is reported before any store is opened
    ids = queue.add(cli_store(), refs)
    if args.json:
        emit(ids, as_json=True)
    else:
        for i in ids:
            print(i)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch import queue

    emit(queue.items(cli_store()), as_json=args.json, columns=QUEUE_COLUMNS)
    return EXIT_OK


def cmd_runner(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch.queue import Runner

    handled = Runner(cli_store(), on_event=err).serve(once=args.once)
    err(_("runner: {n} item(s) handled").format(n=handled))
    return EXIT_OK
