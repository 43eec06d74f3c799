"""`zerodeck diagnose LOGFILE`: why a run ended, from its log (and its exit status if known).

A thin wrapper over `zerodeck.core.outcome.diagnose_file`, so the supervisor and this command can
never disagree about a log.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, say
from zerodeck.core.errors import EXIT_OK, BadInput
from zerodeck.core.i18n import _

COLUMNS = ["outcome", "device", "code", "rank", "reason"]


def register(sub: Any) -> None:
    p = sub.add_parser("diagnose", help=_("classify how a run ended from its log file (oom, comm_error, ...)"))
    p.add_argument("logfile", type=Path, metavar="LOGFILE", help=_("a run's console log (any launcher)"))
    p.add_argument("--exit-code", type=int, default=None, metavar="N",
                   help=_("the job's exit status, when known (torchrun exits 1 whatever the cause)"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_diagnose)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from zerodeck.core.outcome.classify import UnreadableLog, diagnose_file

    try:
        diagnosis = diagnose_file(args.logfile, exit_code=args.exit_code)
    except UnreadableLog as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        emit(diagnosis.to_json(), as_json=True)
        return EXIT_OK
    data = diagnosis.to_json()
    head = {k: data[k] for k in COLUMNS}
    if head["outcome"] is None:
        head["outcome"] = "unknown"  # JSON keeps null (the contract); a person reads a word
    emit(head, as_json=False)
    say("\n" + diagnosis.excerpt)
    return EXIT_OK
