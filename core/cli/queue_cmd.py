"""`zerodeck queue add`, `zerodeck queue`, `zerodeck runner`: the persistent run queue."""

from __future__ import annotations

import argparse
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err
from zerodeck.core.errors import EXIT_OK, BadInput
from zerodeck.core.i18n import _

QUEUE_COLUMNS = ["id", "recipe", "state", "host", "claimed_by", "run_id", "added_at", "reason"]


def register(sub: Any) -> None:
    p = sub.add_parser("queue", help=_("the run queue: list it, or `queue add RECIPE...`"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_list)
    qs = p.add_subparsers(dest="queue_command", metavar="COMMAND")
    add = qs.add_parser("add", help=_("append recipes (files or catalog names) to the queue"))
    add.add_argument("recipes", nargs="+", metavar="RECIPE")
    add.add_argument("--host", metavar="NAME", default=None,
                     help=_("pin the runs to this server: only its runner claims them"))
    add_json_flag(add)
    add.set_defaults(handler=cmd_add)

    r = sub.add_parser("runner", help=_("run queued recipes, packed onto the free cards of this host"))
    r.add_argument("--once", action="store_true", help=_("run what is queued, then exit"))
    r.add_argument("--serial", action="store_true", help=_("one run at a time, in queue order"))
    r.set_defaults(handler=cmd_runner)

    h = sub.add_parser("hosts", help=_("the cards of each host: which run holds each, foreign processes"))
    add_json_flag(h)
    h.set_defaults(handler=cmd_hosts)


def cmd_add(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.cli.run_cmd import expand_refs
    from zerodeck.core.launch import queue

    refs = expand_refs(args.recipes)  # a bad reference is reported before any store is opened
    host = args.host.strip() if args.host is not None else None
    if host is not None and (not host or any(ch.isspace() or not ch.isprintable() for ch in host)):
        raise BadInput(f"--host {args.host!r}: expected a host name (as `zerodeck hosts` lists them)")
    ids = queue.add(cli_store(), refs, host=host)
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


def host_setup() -> tuple[Any, Any]:
    """This host's card ledger configuration and the telemetry source of its cards, if any."""
    from zerodeck.core.cli.context import cli_host

    host = cli_host()
    return host.config, host.source


def cmd_runner(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch.queue import Runner

    config, source = host_setup()
    runner = Runner(cli_store(), on_event=err, config=config, source=source, serial=args.serial)
    handled = runner.serve(once=args.once)
    err(_("runner: {n} item(s) handled").format(n=handled))
    return EXIT_OK


HOST_COLUMNS = ["host", "card", "run_id", "run", "foreign_pids", "memory_used_mb", "memory_total_mb", "seen_at",
                "last_heartbeat"]


def cmd_hosts(args: argparse.Namespace) -> int:
    from zerodeck.core.cli.context import cli_store
    from zerodeck.core.launch import ledger
    from zerodeck.core.launch.hostname import host_grace
    from zerodeck.store.errors import StoreReadOnly

    config, source = host_setup()
    store = cli_store()
    snap = source.read() if source is not None else None
    try:
        ledger.release_stale(store, config.host)
        # Reading this host's cards is not a heartbeat: only a runner or a supervisor says a host lives.
        store.record_host(config.host, ledger.host_records(config, ledger.observe(config, snap)))
    except StoreReadOnly:
        pass  # a read-only store still lists what was recorded
    hosts = ledger.hosts_json(store, host_grace())
    if args.json:
        emit(hosts, as_json=True)
        return EXIT_OK
    stale = _("(stale)")
    rows = [{"host": h["host"], "card": c["index"], "run_id": c["run_id"], "run": c["run_name"],
             "foreign_pids": ",".join(map(str, c["foreign_pids"])) or None, "memory_used_mb": c["memory_used_mb"],
             "memory_total_mb": c["memory_total_mb"], "seen_at": h["seen_at"],
             "last_heartbeat": f"{h['last_heartbeat'] or '-'} {stale}" if h["stale"] else h["last_heartbeat"]}
            for h in hosts for c in h["cards"] or [{"index": None, "run_id": None, "run_name": None,
                                                    "foreign_pids": [], "memory_used_mb": None,
                                                    "memory_total_mb": None}]]
    emit(rows, as_json=False, columns=HOST_COLUMNS)
    return EXIT_OK
