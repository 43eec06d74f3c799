"""Hosts: every server sharing the store, its cards and who holds each, and when it last beat.

Several servers share one store (issue 14); each runner heartbeats its host and its cards' latest
state. A host silent past the grace (`ZERODECK_HOST_GRACE`, 60 s by default) is marked stale: its
claimed runs are recorded `lost` by whoever reconciles. Opened with `h` from Runs; the rows are read
in a worker (`Services.hosts`, the `zerodeck hosts --json` rows) and read again every few seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from zerodeck.core.i18n import N_, _
from zerodeck.core.values import printable
from zerodeck.tui.messages import HostsLoaded, LoadFailed
from zerodeck.tui.screens.base import ZerodeckScreen
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.table import Table

COLUMNS = (("host", N_("host")), ("heartbeat", N_("heartbeat")), ("card", N_("card")), ("run", N_("run")),
           ("memory", N_("memory MiB")), ("foreign", N_("foreign")))
RELOAD_S = 3.0


class HostsScreen(ZerodeckScreen):
    BINDINGS = [Binding("escape,b", "app.pop_screen", _("Back")), Binding("r", "reload", _("Reload"))]

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        yield Static(Text(" " + _("Hosts") + " …", style="bold"), id="hosts-title")
        yield Table(id="hosts", cursor_type="row", fixed_columns=1)
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one("#hosts", DataTable)
        for key, label in COLUMNS:
            table.add_column(_(label), key=key)
        table.focus()
        self.load()
        self.set_interval(RELOAD_S, self.load)

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="hosts")
    def load(self) -> None:
        try:
            self.post_message(HostsLoaded(self.zapp.services.hosts()))
        except Exception as exc:
            self.post_message(LoadFailed(str(exc)))

    def on_hosts_loaded(self, msg: HostsLoaded) -> None:
        if msg.hosts == self.hosts:
            return
        self.hosts = msg.hosts
        table = self.query_one("#hosts", DataTable)
        row = table.cursor_row
        table.clear()
        now = self.zapp.clock()
        for i, (key, cells) in enumerate(host_rows(msg.hosts, now)):
            table.add_row(*cells, key=f"{key}:{i}")
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        stale = sum(1 for h in msg.hosts if h["stale"])
        title = Text(" " + _("Hosts: {n}").format(n=len(msg.hosts)), style="bold")
        if stale:
            title.append("  " + _("{n} silent: their claimed runs are marked lost").format(n=stale), style="yellow")
        self.query_one("#hosts-title", Static).update(title)


def beat_text(host: dict[str, Any], now: datetime) -> Text:
    """How long ago the host last beat; a stale host in red, saying so."""
    last = host.get("last_heartbeat")
    if not last:
        return Text(_("never"), style="red" if host["stale"] else "")
    age = max(0.0, (now - datetime.fromisoformat(last)).total_seconds())
    shown = f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min"
    if host["stale"]:
        return Text(_("{age} ago (stale)").format(age=shown), style="bold red")
    return Text(_("{age} ago").format(age=shown))


def host_rows(hosts: list[dict[str, Any]], now: datetime) -> list[tuple[str, tuple[object, ...]]]:
    """One row per card of each host (the host and its heartbeat on its first row), or one row for a
    host that reported no cards."""
    out: list[tuple[str, tuple[object, ...]]] = []
    for h in hosts:
        name = printable(h["host"])
        beat = beat_text(h, now)
        cards = h["cards"] or [None]
        for i, c in enumerate(cards):
            first = i == 0
            if c is None:
                out.append((name, (name, beat, "-", "-", "-", "-")))
                continue
            run = "-" if c["run_id"] is None else f"{c['run_id']} {printable(c.get('run_name') or '')}".rstrip()
            used, total = c["memory_used_mb"], c["memory_total_mb"]
            memory = "-" if used is None or total is None else f"{used:.0f}/{total:.0f}"
            foreign = ",".join(map(str, c["foreign_pids"])) or "-"
            out.append((name, (name if first else "", beat if first else "", str(c["index"]),
                               Text(run, style="bold") if c["run_id"] is not None else run, memory,
                               Text(foreign, style="yellow") if c["foreign_pids"] else foreign)))
    return out
