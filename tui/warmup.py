"""A head start for the screens opened after the first one (issue 12: every key under 100 ms).

Opening a screen for the first time cost 100-200 ms beyond drawing it: importing its modules (the
plotting library alone is 100 ms) and, for every widget class new to the app, Textual adding that
class's default styles and then re-parsing every style sheet of the app before the screen can paint.
Both are done here while nobody waits, a second after the first screen has painted: the imports in
a worker thread, the styles on the event loop (one parse, tens of milliseconds, at an idle moment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.dom import DOMNode


def import_screens() -> None:
    """In a worker thread: the modules of every screen and dialog opened later."""
    from zerodeck.tui.screens import columns, compare, confirm, live, plan, run_detail  # noqa: F401


def _classes() -> tuple[type[DOMNode], ...]:
    from textual.containers import Horizontal, Vertical, VerticalScroll
    from textual.widgets import Log, OptionList, SelectionList
    from zerodeck.tui.screens.columns import ColumnChooser
    from zerodeck.tui.screens.compare import CompareScreen, ExportDialog
    from zerodeck.tui.screens.confirm import ConfirmScreen
    from zerodeck.tui.screens.live import LiveScreen
    from zerodeck.tui.screens.plan import PlanScreen
    from zerodeck.tui.screens.run_detail import RunDetailScreen
    from zerodeck.tui.widgets.cards import CardHeader, CardRow, HostRow, ProcList
    from zerodeck.tui.widgets.curves import CurvesPlot
    from zerodeck.tui.widgets.logtail import LogTail
    from zerodeck.tui.widgets.plan_bars import PlanBars

    return (Horizontal, Vertical, VerticalScroll, Log, OptionList, SelectionList, ColumnChooser, CompareScreen,
            ExportDialog, ConfirmScreen, LiveScreen, PlanScreen, RunDetailScreen, CardHeader, CardRow, HostRow,
            ProcList, CurvesPlot, LogTail, PlanBars)


def add_styles(stylesheet: Any) -> None:
    """On the event loop: what `Widget._post_register` adds for a class's first instance (its own and
    its bases' DEFAULT_CSS, read from the class alone), then one parse. Only a head start: any
    failure leaves the screens to add their styles when they open, as they always did."""
    try:
        for cls in _classes():
            for read_from, css, tie_breaker, scope in cls.__new__(cls)._get_default_css():
                stylesheet.add_source(css, read_from=read_from, is_default_css=True, tie_breaker=tie_breaker,
                                      scope=scope)
        _ = stylesheet.rules_map  # parsed now, not when a screen opens
    except Exception:
        return
