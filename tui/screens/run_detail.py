"""One run's full record: every stored field, peaks per card against the prediction, the loss and
throughput curves (a resumed run's: its chain's), its events, the card snapshot taken at failure,
and the log's tail.

The header is painted at once from the row the Runs table already holds; the rest is read in a
worker, painted with the fields first, and the curves are drawn just after that paint (a plot costs
more than the rest of the record). Loss and throughput sit side by side, so both are in view at
80 x 24 without scrolling; a tall terminal gives them more rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.events import Resize
from textual.widgets import Log, Static
from zerodeck.core.i18n import _
from zerodeck.core.values import printable
from zerodeck.tui.messages import LoadFailed, RunDetailLoaded, RunStopped
from zerodeck.tui.screens.stopping import StopsRuns
from zerodeck.tui.view import Curves, RunDetail, run_label
from zerodeck.tui.widgets.curves import CurvesPlot
from zerodeck.tui.widgets.footer import KeysFooter
from zerodeck.tui.widgets.modebar import ModeBar
from zerodeck.tui.widgets.text import bar, error_line, outcome_text, sparkline

if TYPE_CHECKING:
    from zerodeck.store.records import RunRecord

HIDDEN = {"rendered", "env", "argv", "versions", "baseline", "summary", "attempts_log"}
TALL = 34  # from this height the curves get more rows


class RunDetailScreen(StopsRuns):
    BINDINGS = [Binding("escape,b", "app.pop_screen", _("Back")), Binding("s", "stop", _("Stop")),
                Binding("r", "reload", _("Reload"))]

    def __init__(self, run_id: int, run: RunRecord | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.run = run  # the row the Runs table holds: the header needs no wait
        self.detail: RunDetail | None = None

    def compose(self) -> ComposeResult:
        yield ModeBar()
        with VerticalScroll(id="detail-body"):
            yield Static(head_text(self.run) if self.run else f"run {self.run_id} …", id="detail-head")
            yield Horizontal(id="detail-curves")  # the plots are mounted once there are points
            yield Static("", id="detail-peaks")
            yield Static("", id="detail-events")
            yield Static("", id="detail-fields")
            yield Static("", id="detail-failure")
        yield Log(id="detail-log", max_lines=500)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#detail-curves").display = False
        self.load()

    def on_resize(self, event: Resize) -> None:
        self.query_one("#detail-curves").set_class(event.size.height >= TALL, "-tall")

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="detail")
    def load(self) -> None:
        try:
            self.post_message(RunDetailLoaded(self.zapp.services.run_detail(self.run_id)))
        except Exception as exc:
            self.post_message(LoadFailed(f"run {self.run_id}: {error_line(exc)}"))

    def on_run_stopped(self, msg: RunStopped) -> None:
        super().on_run_stopped(msg)
        self.load()

    def on_run_detail_loaded(self, msg: RunDetailLoaded) -> None:
        d = self.detail = msg.detail
        self.query_one("#detail-head", Static).update(head_text(d.run))
        fields = Text()
        for k, v in d.fields:
            if k in HIDDEN or v in ("-", "", "{}", "[]"):
                continue
            fields.append(f"{k:>20} ", style="dim")
            fields.append(f"{v}\n")
        self.query_one("#detail-fields", Static).update(fields)
        self.query_one("#detail-peaks", Static).update(peaks_text(d))
        events = self.query_one("#detail-events", Static)
        events.display = bool(d.events)  # no events: the record looks as it always did
        events.update(events_text(d))
        if d.curves:
            self.call_after_refresh(self._show_curves, d.curves)  # the fields are painted first
        else:
            self.query_one("#detail-curves").display = False
        failure = Text()
        if d.failure_snapshot:
            failure.append(_("card snapshot at failure") + "\n", style="bold")
            failure.append(json.dumps(d.failure_snapshot, indent=1, default=str)[:4000])
        self.query_one("#detail-failure", Static).update(failure)
        log = self.query_one("#detail-log", Log)
        log.clear()
        log.write_lines(list(d.log_tail) or [_("(no log)")])

    def _show_curves(self, curves: Curves) -> None:
        box = self.query_one("#detail-curves", Horizontal)
        if not box.children:
            box.mount_all([CurvesPlot("loss", id="detail-loss"), CurvesPlot("throughput", id="detail-speed")])
        self.query_one("#detail-speed").display = bool(curves.samples_per_s)
        for plot in self.query(CurvesPlot):
            plot.show(curves)
        box.display = True

    def action_stop(self) -> None:
        if self.detail is None or not self.detail.run.active:
            self.notify(_("this run is not running"), severity="warning")
            return
        self._stop(self.run_id)


EVENT_DETAIL_CHARS = 100
EVENTS_SHOWN = 20  # a run that stalls and recovers all week keeps its record short: the newest ones


def events_text(d: RunDetail) -> Text:
    """The run's events (stalled, resumed, alerts...), one line each, newest last."""
    t = Text()
    if not d.events:
        return t
    t.append(_("events") + "\n", style="bold")
    if len(d.events) > EVENTS_SHOWN:
        t.append(_("… {n} earlier (`zerodeck show {run}` lists them)").format(
            n=len(d.events) - EVENTS_SHOWN, run=d.run.id) + "\n", style="dim")
    for at, kind, detail in d.events[-EVENTS_SHOWN:]:
        t.append(f"{at:%Y-%m-%d %H:%M:%S} ", style="dim")
        t.append(f"{kind:<14}", style="yellow" if kind in ("stalled", "resume_failed", "alert_failed") else "")
        t.append(printable(_event_detail(detail))[:EVENT_DETAIL_CHARS] + "\n")
    return t


def _event_detail(detail: object) -> str:
    """The same words `zerodeck show` gives an event: its summary, else its fields (the card
    snapshot of a stall left out: too long for a line)."""
    if isinstance(detail, dict):
        return str(detail.get("summary") or ", ".join(f"{k}={v}" for k, v in detail.items() if k != "cards"))
    return "" if detail is None else str(detail)


def head_text(r: RunRecord) -> Text:
    head = Text(f"run {r.id} · {r.name} · ", style="bold")
    head.append_text(outcome_text(run_label(r)))
    if r.reason:
        head.append(f"\n{r.reason}", style="red")
    if r.placement:  # its processes were found on cards it was not given (core/launch/ledger.py)
        head.append(f"\nplacement: {r.placement}", style="yellow")
    return head


def peaks_text(d: RunDetail) -> Text:
    t = Text()
    pred = d.run.predicted_peak_gib
    if d.peaks:
        t.append(_("peak per card (predicted {gib} GiB)").format(gib="-" if pred is None else f"{pred:.1f}") + "\n",
                 style="bold")
        for p in d.peaks:
            frac = p.peak_mb / p.total_mb if p.peak_mb is not None and p.total_mb else None
            t.append(f"{p.card:>8} ")
            t.append_text(bar(frac, 20))
            peak = "N/A" if p.peak_mb is None else f"{p.peak_mb / 1024:.1f}"
            total = "N/A" if p.total_mb is None else f"{p.total_mb / 1024:.1f}"
            t.append(f" {peak}/{total} GiB\n")
    if d.losses:
        t.append(f"loss {d.losses[0]:.4f} → {d.losses[-1]:.4f} ", style="bold")
        t.append(sparkline(d.losses, 50), style="cyan")
        t.append("\n")
    return t
