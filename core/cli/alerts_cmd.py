"""`zerodeck alerts test`: send a test message to every target of `$ZERODECK_HOME/config.toml`."""

from __future__ import annotations

import argparse
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err, say
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput
from zerodeck.core.i18n import _


def register(sub: Any) -> None:
    p = sub.add_parser("alerts", help=_("alert targets (config.toml [alerts])"))
    inner = p.add_subparsers(dest="alerts_command", metavar="COMMAND", required=True)
    t = inner.add_parser("test", help=_("send a test message to every configured target"))
    add_json_flag(t)
    t.set_defaults(handler=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    import socket

    from zerodeck.core import paths
    from zerodeck.core.alerts.config import load_config
    from zerodeck.core.alerts.send import deliver

    path = paths.config_file()
    config = load_config(path)
    if not config.urls:
        raise BadInput(f"{path}: no alert targets; add [alerts] urls = [\"...\"] (Apprise URLs)")
    host = socket.gethostname()
    results = deliver(config.urls, f"zerodeck: test alert from {host}",
                      f"zerodeck on {host} can reach this target.\nAlerts are sent on: {', '.join(config.on)}.")
    if args.json:
        emit({"config": str(path), "on": list(config.on),
              "targets": [{"url": d.target, "ok": d.ok, "error": d.error} for d in results]}, as_json=True)
    else:
        for d in results:
            say(f"{'sent' if d.ok else 'failed'}  {d.target}" + (f": {d.error}" if d.error else ""))
    failed = [d for d in results if not d.ok]
    if failed and not args.json:
        err(f"{len(failed)} of {len(results)} alert target(s) failed")
    return EXIT_FAILED if failed else EXIT_OK
