"""`zerodeck cards`: the cards of this machine, live, or parsed from a saved npu-smi / nvidia-smi
output. A thin wrapper over core.telemetry; the JSON shape is a contract (ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit, err, render_table
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK, BadInput
from zerodeck.core.i18n import _
from zerodeck.core.values import printable

TABLE_COLUMNS = ["npu", "chip", "name", "health", "power_w", "temp_c", "aicore_pct", "memory_used_mb",
                 "memory_total_mb", "hbm_used_mb", "hbm_total_mb", "bus_id"]


def register(sub: Any) -> None:
    p = sub.add_parser("cards", help=_("live per-card telemetry (npu-smi, NVML, CPU ranks)"))
    p.add_argument("--once", action="store_true", help=_("print one reading and exit"))
    add_json_flag(p, help=_("one reading as JSON on stdout"))
    p.add_argument("--source", choices=["npu-smi", "nvidia", "cpu"], help=_("the source (default: detected)"))
    p.add_argument("--interval", type=float, default=1.0, help=_("seconds between live readings (default 1)"))
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help=_("how long one reading may take before the tool is killed (default 2)"))
    p.add_argument("--from-npu-smi", type=Path, metavar="FILE", help=_("parse a saved `npu-smi info` output"))
    p.add_argument("--from-nvidia-smi", type=Path, metavar="FILE",
                   help=_("parse a saved nvidia-smi output (plain, -q -x XML, or --query-gpu CSV)"))
    p.set_defaults(handler=cmd_cards)


def _read_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror or exc}") from None
    return data.decode("utf-8", "replace")


def snapshot_from_file(args: argparse.Namespace) -> Any:
    from zerodeck.core.telemetry import npusmi_parse, nvidia_parse
    from zerodeck.core.telemetry.model import Snapshot

    if args.from_npu_smi is not None:
        table = npusmi_parse.parse_info(_read_file(args.from_npu_smi))
        if table.error:
            raise BadInput(f"{args.from_npu_smi}: {table.error}")
        return Snapshot(source="npu-smi", cards=table.cards, processes=table.processes, versions=table.versions)
    cards, procs, error = nvidia_parse.parse_any(_read_file(args.from_nvidia_smi))
    if error:
        raise BadInput(f"{args.from_nvidia_smi}: {error}")
    return Snapshot(source="nvidia", cards=cards, processes=procs)


def render(snap: Any) -> str:
    """The human view: cards, the processes on them, the host line, and any error or staleness."""
    lines = []
    if snap.error:
        lines.append(printable(snap.error) + (" (showing the last good reading)" if snap.stale else ""))
    rows = [c.contract() for c in snap.cards]
    lines.append(render_table(rows, TABLE_COLUMNS) if rows else f"{snap.source}: no cards")
    if snap.processes:
        lines += ["", render_table([p.contract() for p in snap.processes], ["npu", "chip", "pid", "name", "memory_mb"])]
    h = snap.host
    if h is not None and h.ram_total_mb:
        lines += ["", f"host: cpu {h.cpu_pct}% of {h.cpu_count}  ram {h.ram_used_mb:.0f}/{h.ram_total_mb:.0f} MB  "
                      f"swap {h.swap_used_mb:.0f}/{h.swap_total_mb:.0f} MB"]
    return "\n".join(lines)


def cmd_cards(args: argparse.Namespace) -> int:
    if args.from_npu_smi is not None and args.from_nvidia_smi is not None:
        raise BadInput(_("--from-npu-smi and --from-nvidia-smi: give one"))
    if args.interval <= 0:
        raise BadInput(_("--interval: must be > 0, got {value}").format(value=args.interval))
    if args.timeout is not None and not 0 < args.timeout <= 600:
        raise BadInput(_("--timeout: must be > 0 and <= 600 seconds, got {value}").format(value=args.timeout))
    if args.from_npu_smi is not None or args.from_nvidia_smi is not None:
        snap = snapshot_from_file(args)
        if args.json:
            emit(snap.contract(), as_json=True)
        else:
            print(render(snap))
        return EXIT_OK

    from zerodeck.core.telemetry.poller import Poller
    from zerodeck.core.telemetry.sources import CLI_TIMEOUT, make_source

    timeout = CLI_TIMEOUT if args.timeout is None else args.timeout
    source = make_source(args.source)
    live = not (args.once or args.json) and sys.stdout.isatty()
    if not live:
        poller = Poller(source, lambda s: None, with_host=not args.json, timeout=timeout)
        snap = poller.poll_once()
        if args.json:
            emit(contract(snap), as_json=True)
        else:
            print(render(snap))
        if snap.error:
            err(snap.error)
            return EXIT_FAILED
        return EXIT_OK
    return _live(source, args.interval, timeout)


def contract(snap: Any) -> dict[str, Any]:
    """The contract keys; a failed read adds `"error"` (one line, e.g. "npu-smi: timed out after 2 s")
    after them, so a good reading keeps exactly the documented shape."""
    data: dict[str, Any] = snap.contract()
    if snap.error:
        data["error"] = snap.error
    return data


def _live(source: Any, interval: float, timeout: float) -> int:
    """Redraw in place on each new snapshot until Ctrl-C; the poller thread only posts."""
    from zerodeck.core.telemetry.poller import Poller

    fresh = threading.Event()
    box: dict[str, Any] = {}

    def post(snap: Any) -> None:
        box["snap"] = snap  # the newest replaces any backlog
        fresh.set()

    poller = Poller(source, post, interval=interval, timeout=timeout)
    poller.start()
    try:
        while True:
            fresh.wait()
            fresh.clear()
            text = render(box["snap"])
            sys.stdout.write("\x1b[H\x1b[2J" + f"zerodeck cards — {source.name} — Ctrl-C to quit\n\n" + text + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        poller.stop(join_timeout=1.0)
