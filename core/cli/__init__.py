"""The `zerodeck` command: an argparse tree assembled from one small module per command group.

Each command module exposes `register(subparsers)` and keeps its heavy imports (the store, the
planner, telemetry) inside its handlers, so `zerodeck --help` stays fast and never loads torch,
deepspeed or textual. Handlers return an exit code; ZerodeckError becomes one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from zerodeck.core import __version__
from zerodeck.core.cli.output import err
from zerodeck.core.errors import EXIT_FAILED, EXIT_USAGE, ZerodeckError
from zerodeck.core.i18n import _, language, language_from_env, ngettext, set_language
from zerodeck.store.errors import StoreError, failure_line

# Order is the order shown in --help.
COMMAND_MODULES = [
    "zerodeck.core.cli.recipes_cmd",
    "zerodeck.core.cli.compare_cmd",
    "zerodeck.core.cli.chart_cmd",
    "zerodeck.core.cli.cards_cmd",
    "zerodeck.core.cli.doctor_cmd",
    "zerodeck.core.cli.plan_cmd",
    "zerodeck.core.cli.probe_cmd",
    "zerodeck.core.cli.data_cmd",
    "zerodeck.core.cli.run_cmd",
    "zerodeck.core.cli.queue_cmd",
    "zerodeck.core.cli.diagnose_cmd",
    "zerodeck.core.cli.alerts_cmd",
    "zerodeck.core.cli.store_cmd",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        err(message)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zerodeck",
        description=_("Plan, launch, watch and compare LLM fine-tuning runs (Ascend NPU, NVIDIA, CPU). "
                      "With no command, opens the terminal UI."),
    )
    parser.add_argument("--version", action="version", version=f"zerodeck {__version__}",
                        help=_("show the version and exit"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run_tui() -> int:
    """The TUI, or one line saying why it cannot start (a missing or broken TUI is never another command)."""
    try:
        from zerodeck.tui.app import run as run_app
    except ImportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        err(_("cannot start the TUI: {reason}").format(reason=reason))
        return EXIT_FAILED
    from zerodeck.core.cli.context import cli_store, server_store_named

    # A store on a server is opened before the screen takes the terminal: one that cannot be reached
    # is one line here (StoreUnreachable), not an error inside the TUI. SQLite stays opened lazily.
    return run_app(cli_store() if server_store_named() else None)


def choose_language(env: Mapping[str, str]) -> None:
    """The process's language, once, before any message is built (ARCHITECTURE.md, "Languages")."""
    set_language(language_from_env(env))
    if language() != "en":
        # argparse words its own lines ("usage:", "the following arguments are required") through
        # gettext's global domain; point it at our catalog, which carries those messages too.
        argparse._ = _  # type: ignore[attr-defined]
        argparse.ngettext = ngettext  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    choose_language(os.environ)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    try:
        # A data directory that is a file fails every store and run directory later with a bare
        # `File exists`; the CLI and the TUI (no command) both say so once, here.
        from zerodeck.core.paths import check_home

        check_home()
        from zerodeck.core.launch.hostname import configure

        configure(os.environ)  # ZERODECK_HOST, ZERODECK_HOST_GRACE: this host as every store write names it
        if args.command is None:
            return run_tui()
        if handler is None:
            # A group such as `zerodeck recipes` named with no sub-command.
            args.group_parser.print_help()
            return EXIT_USAGE
        return int(handler(args) or 0)
    except ZerodeckError as exc:
        for line in exc.lines:
            err(line)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except StoreError as exc:
        err(str(exc))
        return EXIT_FAILED
    except OSError as exc:
        err(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("ZERODECK_DEBUG"):
            raise
        store_line = failure_line(exc)  # a database error the store did not classify still names the file
        if store_line:
            err(store_line)
            return EXIT_FAILED
        err(_("internal error: {kind}: {error} (ZERODECK_DEBUG=1 shows the traceback)")
            .format(kind=type(exc).__name__, error=exc))
        return EXIT_FAILED


def entry() -> None:
    from zerodeck.core.cli.context import leave

    leave(main())
