"""A resume chain (issue 18) read as one run: `chart loss|throughput` draw it as one line marked where
each resumed run took over, compare reports the chain's steps and wall time, and the TUI's run record
draws the chain's curve and lists the run's events.

The chain is written through the real store API (runs linked by `parent_id`, their metric points):
what the supervisor and `zerodeck resume` leave behind, without training anything.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from textual.widgets import DataTable, Static
from zerodeck.core.compare import Selection, comparison_table, load_rows
from zerodeck.core.export.chart_data import Curve, drop_ancestors, stitch
from zerodeck.core.export.tables import render
from zerodeck.store.api import Store

from .tui_support import app, drive, text_of, until

T0 = datetime(2026, 11, 1, 8, 0, 0, tzinfo=timezone.utc)
NAME = "qwen-chain"
CKPT_B, CKPT_C = "/runs/1/checkpoint-30", "/runs/2/checkpoint-50"


def _loss(run: int, step: int) -> float:
    """Each run's loss differs, so a point tells which run it came from."""
    return round({0: 3.0, 1: 2.0, 2: 1.0}[run] - step / 1000, 4)


def make_chain(store: Store) -> tuple[int, int, int]:
    """a: steps 1..35, died (checkpoint at 30); b resumed it from 30: steps 31..60, died (checkpoint at
    50); c resumed b from 50: steps 51..80, succeeded. Wall times 1000 s, 600 s, 500 s."""
    store.save_snapshot(hash="hchain", name=NAME, toml=f'name = "{NAME}"\n', source_path=None)
    spans = ((0, 1000, 1, 35, "comm_error", None, None), (2000, 600, 31, 60, "comm_error", 0, CKPT_B),
             (4000, 500, 51, 80, "succeeded", 1, CKPT_C))
    ids: list[int] = []
    for i, (start, wall, first, last, outcome, parent, ckpt) in enumerate(spans):
        rid = store.add_run(name=NAME, recipe_hash="hchain", status="finished", outcome=outcome, device="cpu",
                            cards=2, started_at=T0 + timedelta(seconds=start),
                            ended_at=T0 + timedelta(seconds=start + wall), steps_done=last, steps_total=80,
                            final_loss=_loss(i, last), parent_id=None if parent is None else ids[parent],
                            resumed_from=ckpt)
        store.upsert_metrics(rid, [{"step": s, "loss": _loss(i, s), "tokens_per_s": 1000.0 * (i + 1)}
                                   for s in range(first, last + 1)])
        ids.append(rid)
    return ids[0], ids[1], ids[2]


@pytest.fixture
def store(backend_url: str) -> Store:
    """The test's store, on SQLite and on PostgreSQL (conftest `backend_url`)."""
    return Store.from_environment()


@pytest.fixture
def chain(store: Store) -> tuple[int, int, int]:
    return make_chain(store)


# -- the pure pieces ---------------------------------------------------------------------------------------
def test_stitch_lets_a_later_run_replace_the_steps_it_redid() -> None:
    a = [(float(s), 1.0) for s in range(1, 36)]
    b = [(float(s), 2.0) for s in range(31, 61)]
    out = stitch([(None, a), (31.0, b)])
    assert [x for x, _ in out] == [float(s) for s in range(1, 61)]
    assert dict(out)[30.0] == 1.0 and dict(out)[31.0] == 2.0 and dict(out)[35.0] == 2.0
    # Evaluations are cut at the step the run restarted at, not at its own first evaluation.
    evals = stitch([(None, [(20.0, 1.0), (34.0, 1.0)]), (31.0, [(40.0, 2.0)])])
    assert evals == [(20.0, 1.0), (40.0, 2.0)]
    assert stitch([(None, []), (5.0, [])]) == []


def test_drop_ancestors_keeps_the_last_run_of_each_chain() -> None:
    assert drop_ancestors([[1], [1, 2, 3], [7]]) == [1, 2]
    assert drop_ancestors([[1, 2], [1, 2, 3]]) == [1]
    assert drop_ancestors([[1], [2]]) == [0, 1]  # unrelated runs: both
    assert drop_ancestors([[], [4]]) == [1]


# -- charts ------------------------------------------------------------------------------------------------
@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[list[Curve]]:
    """The curves each chart command handed its painter (the real chart is still drawn)."""
    from zerodeck.core.export.painter import Painter

    seen: list[list[Curve]] = []
    real = Painter.draw

    def keep(self: Painter, chart: str, data: Any, *args: Any, **kw: Any) -> bytes:
        if chart == "curves_chart":
            seen.append(list(data))
        return real(self, chart, data, *args, **kw)

    monkeypatch.setattr(Painter, "draw", keep)
    return seen


def _texts(svg: str) -> str:
    return "".join(ET.fromstring(svg).itertext())


def test_chart_loss_draws_the_chain_as_one_line(cli, chain: tuple[int, int, int],
                                                drawn: list[list[Curve]], tmp_path: Any) -> None:
    a, b, c = chain
    # The run given with its own ancestors: drawn once, as the chain that ends with it.
    code, svg, err = cli("chart", "loss", str(a), str(c))
    assert code == 0, err
    (curve,) = drawn[-1]
    assert curve.label == f"#{c} {NAME}" and curve.resumed_from == (a, b) and curve.resumes == (31.0, 51.0)
    steps = [x for x, _ in curve.train]
    assert steps == [float(s) for s in range(1, 81)]  # no step twice, none missing
    loss = dict(curve.train)
    assert loss[30.0] == _loss(0, 30) and loss[31.0] == _loss(1, 31) and loss[50.0] == _loss(1, 50)
    assert loss[51.0] == _loss(2, 51) and loss[80.0] == _loss(2, 80)
    texts = _texts(svg)
    assert f"#{c} {NAME} (resumed from #{a}, #{b})" in texts and "resumed" in texts
    assert f"#{a} {NAME}" not in texts  # not a line of its own
    # The middle run alone: its chain up to it.
    code, _, _ = cli("chart", "loss", str(b), "-o", str(tmp_path / "b.png"))
    assert code == 0 and (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")
    (curve,) = drawn[-1]
    assert curve.resumed_from == (a,) and curve.resumes == (31.0,) and curve.train[-1] == (60.0, _loss(1, 60))


def test_chart_of_a_run_never_resumed_is_unchanged(cli, chain: tuple[int, int, int],
                                                   drawn: list[list[Curve]]) -> None:
    a, _, c = chain
    code, svg, _ = cli("chart", "loss", str(a))
    assert code == 0
    (curve,) = drawn[-1]
    assert curve.resumed_from == () and curve.resumes == () and len(curve.train) == 35
    assert "resumed" not in _texts(svg)


def test_chart_throughput_of_a_chain(cli, chain: tuple[int, int, int], drawn: list[list[Curve]]) -> None:
    a, b, c = chain
    code, svg, _ = cli("chart", "throughput", str(c))
    assert code == 0
    (curve,) = drawn[-1]
    tput = dict(curve.train)
    assert len(tput) == 80 and tput[30.0] == 1000.0 and tput[31.0] == 2000.0 and tput[51.0] == 3000.0
    assert "tokens/s" in _texts(svg) and f"(resumed from #{a}, #{b})" in _texts(svg)


# -- compare -----------------------------------------------------------------------------------------------
def test_compare_row_of_a_resumed_run_reports_its_chain(store: Store, chain: tuple[int, int, int]) -> None:
    a, b, c = chain
    rows = {r["id"]: r for r in load_rows(store, Selection(all=True))}
    assert rows[c]["steps_done"] == 80 and rows[c]["wall_time_s"] == 2100.0
    assert rows[c]["final_loss"] == _loss(2, 80)
    assert rows[c]["parent_id"] == b and rows[c]["resumed_from"] == CKPT_C
    assert rows[b]["steps_done"] == 60 and rows[b]["wall_time_s"] == 1600.0 and rows[b]["parent_id"] == a
    # The first run was never resumed: its own numbers, and no chain keys.
    assert rows[a]["steps_done"] == 35 and rows[a]["wall_time_s"] == 1000.0
    assert "parent_id" not in rows[a] and "resumed_from" not in rows[a]
    # Selected alone, its ancestors are read for it: the same numbers.
    (row,) = load_rows(store, Selection(refs=(str(c),)))
    assert row["steps_done"] == 80 and row["wall_time_s"] == 2100.0


def test_compare_columns_for_the_chain(store: Store, chain: tuple[int, int, int]) -> None:
    a, b, c = chain
    table = comparison_table(load_rows(store, Selection(all=True)))
    keys = [col.key for col in table.columns]
    assert "parent_id" in keys and "resumed_from" in keys
    header, *body = list(csv.reader(io.StringIO(render(table, "csv").lstrip("\ufeff"))))
    cells = {row[0]: dict(zip(header, row)) for row in body}
    assert cells[str(c)]["resumed from run"] == str(b) and cells[str(a)]["resumed from run"] == ""
    # Runs never resumed: the columns they always had; asked for by name, the column is known.
    plain = comparison_table(load_rows(store, Selection(refs=(str(a),))))
    assert "parent_id" not in [col.key for col in plain.columns]
    named = comparison_table(load_rows(store, Selection(refs=(str(a),))), columns=["id", "parent_id"])
    assert [col.key for col in named.columns] == ["id", "parent_id"]


def test_compare_json_of_a_chain(cli, chain: tuple[int, int, int]) -> None:
    a, b, c = chain
    code, out, err = cli("compare", str(a), str(c), "--json")
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)["rows"]}
    assert rows[c]["parent_id"] == b and rows[c]["steps_done"] == 80
    assert rows[a].get("parent_id") is None and rows[a]["steps_done"] == 35


# -- TUI run record --------------------------------------------------------------------------------------------
def test_run_record_shows_events_and_the_chains_curve(store: Store, chain: tuple[int, int, int]) -> None:
    a, b, c = chain
    store.add_event(c, "resumed", {"summary": f"from run {b} at step 50", "parent": b, "step": 50},
                    at=T0 + timedelta(seconds=4000))
    store.add_event(c, "stalled", {"summary": "no step for 12 min at step 77", "cards": [{"key": "0"}] * 50},
                    at=T0 + timedelta(seconds=4300))
    store.add_event(c, "alert_sent", "finished to json://127.0.0.1\x1b[2J", at=T0 + timedelta(seconds=4500))
    a_app = app(None)

    async def open_run(pilot: Any, rid: int) -> None:
        table = a_app.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        table.move_cursor(row=[str(k.value) for k in table.rows].index(str(rid)))
        await pilot.pause(0.2)
        await pilot.press("enter")
        await pilot.pause(0.2)
        await until(pilot, lambda: getattr(a_app.screen, "detail", None) is not None)

    async def body(pilot: Any) -> None:
        await pilot.press("3")
        await pilot.pause(0.2)
        await open_run(pilot, c)
        screen = a_app.screen
        d = screen.detail
        assert [s for s, _ in d.curves.loss] == list(range(1, 81)) and d.losses[-1] == _loss(2, 80)
        events = screen.query_one("#detail-events", Static)
        assert events.display
        lines = text_of(events).splitlines()
        assert lines[0] == "events" and len(lines) == 4
        assert "resumed" in lines[1] and f"from run {b} at step 50" in lines[1] and "2026-11-01 09:06:40" in lines[1]
        assert "stalled" in lines[2] and "no step for 12 min at step 77" in lines[2] and "key" not in lines[2]
        assert "alert_sent" in lines[3] and "\\x1b[2J" in lines[3]  # the escape shown, never sent to the terminal
        await pilot.press("escape")
        await pilot.pause(0.2)
        # A run with no events: no section, and its own curve.
        await open_run(pilot, a)
        assert not a_app.screen.query_one("#detail-events", Static).display
        assert len(a_app.screen.detail.curves.loss) == 35

    drive(a_app, body)


def test_run_record_keeps_the_newest_events(store: Store, chain: tuple[int, int, int]) -> None:
    """A run that stalled and recovered all week: the record lists the newest events, and says how
    many earlier ones `zerodeck show` has."""
    from zerodeck.tui.screens.run_detail import EVENTS_SHOWN, events_text
    from zerodeck.tui.services import Services

    _, _, c = chain
    for i in range(EVENTS_SHOWN + 5):
        store.add_event(c, "stalled" if i % 2 == 0 else "progressed", {"summary": f"tick {i}"},
                        at=T0 + timedelta(minutes=i))
    lines = events_text(Services(store).run_detail(c)).plain.splitlines()
    assert lines[1] == f"… 5 earlier (`zerodeck show {c}` lists them)"
    assert len(lines) == 2 + EVENTS_SHOWN and lines[-1].endswith(f"tick {EVENTS_SHOWN + 4}")
    assert "tick 5" in lines[2] and "tick 4" not in "\n".join(lines)
