"""Run in a child interpreter by tests/test_i18n.py: the TUI in Chinese at 80 x 24, the way a user gets
it (the language set once at the entry, before the TUI's modules load), printed as screens of plain
text with each line's width in terminal cells.

Keys go one at a time with a pause, as a person types. Output: for each screen, a `=== NAME` line,
then each row as `CELLS|TEXT`.
"""

from __future__ import annotations

import io
import os
import sys

from zerodeck.core.i18n import language_from_env, set_language

set_language(language_from_env(os.environ))

from rich.cells import cell_len  # noqa: E402
from rich.console import Console  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from tests.tui_support import app, catalog_loaded, drive, table_settled, until  # noqa: E402

SIZE = (80, 24)


def screen_lines(a: object) -> list[str]:
    """The composed screen (dialogs over what is behind them), as Textual's screenshot renders it."""
    console = Console(width=SIZE[0], height=SIZE[1], file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    update = a.screen._compositor.render_update(full=True, screen_stack=a._background_screens)  # type: ignore[attr-defined]
    console.print(update)
    return console.export_text(styles=False).split("\n")[:SIZE[1]]


def main() -> None:
    a = app()
    shots: list[tuple[str, list[str]]] = []

    async def body(pilot: object) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        await until(pilot, lambda: table_settled(table, table.row_count))
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        shots.append(("catalog", screen_lines(a)))
        keys = [str(k.value) for k in table.rows]
        table.move_cursor(row=keys.index("r:demo-cpu-zero2"))
        for key in ("p",):
            await pilot.press(key)  # type: ignore[attr-defined]
            await pilot.pause(0.2)  # type: ignore[attr-defined]
        await until(pilot, lambda: getattr(a.screen.query("#plan-bars").first(), "numbers", None) is not None)
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        shots.append(("plan", screen_lines(a)))
        await pilot.press("l")  # type: ignore[attr-defined]
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        await until(pilot, lambda: getattr(a.screen, "ready", False))
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        shots.append(("launch dialog", screen_lines(a)))
        await pilot.press("escape")  # type: ignore[attr-defined]
        await pilot.pause(0.2)  # type: ignore[attr-defined]
        for key, name in (("3", "runs"), ("2", "live")):
            await pilot.press(key)  # type: ignore[attr-defined]
            await pilot.pause(0.3)  # type: ignore[attr-defined]
            await until(pilot, lambda name=name: a.current_mode == name)
            await pilot.pause(0.3)  # type: ignore[attr-defined]
            shots.append((name, screen_lines(a)))
        # A burst, as a hurried person types: every screen once, ending on the catalog mode (where the
        # plan opened above is still on top).
        await pilot.press("4", "3", "2", "1")  # type: ignore[attr-defined]
        await until(pilot, lambda: a.current_mode == "catalog")
        await pilot.pause(0.3)  # type: ignore[attr-defined]
        shots.append(("catalog mode after a burst", screen_lines(a)))

    drive(a, body, size=SIZE)
    out = sys.stdout
    for name, lines in shots:
        out.write(f"=== {name}\n")
        for line in lines:
            out.write(f"{cell_len(line)}|{line}\n")


if __name__ == "__main__":
    main()
