"""Hosts (issue 14): `zerodeck hosts` and the TUI's Hosts screen show every server sharing the store,
its cards, who holds them and its last heartbeat (a silent one marked stale); Runs and Compare show
the host of each run once the store holds runs of more than one."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from textual.widgets import DataTable
from zerodeck.core.launch import hostname
from zerodeck.store.api import Store
from zerodeck.store.records import HostCardRecord
from zerodeck.tui.app import make_app
from zerodeck.tui.screens.hosts import HostsScreen
from zerodeck.tui.screens.runs import RunsScreen

from tests.tui_support import NoCards, drive, until


def _two_hosts(grace: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, int, int]:
    """gpu-02 beat first and fell silent (past `grace`), gpu-01 beats now; a run of each, gpu-01's
    holding its card 1."""
    monkeypatch.setattr(hostname, "_grace", grace)
    store = Store.from_environment()
    store.save_snapshot(hash="h", name="tiny", toml="", source_path=None)
    ids = []
    for host in ("gpu-02", "gpu-01"):
        item = store.enqueue("tiny.toml", "h", host=host)
        token = store.claim(item, host, [("card", 1)], os.getpid())
        assert token is not None
        run_id = store.add_run(name=f"tiny-{host}", recipe_hash="h", status="running", device="npu")
        store.bind_claim(item, token, run_id, host=host, card_ids=[1])
        cards = [HostCardRecord(host, i, 100.0 * i, 65536.0, (4242,) if i == 0 else ()) for i in range(2)]
        store.heartbeat(host, runner_pid=os.getpid(), cards=cards, lease_s=60)
        ids.append(run_id)
        if host == "gpu-02":
            time.sleep(grace + 1.0)
    return store, ids[1], ids[0]


def test_hosts_json_says_who_holds_each_card_and_which_host_is_silent(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_HOST_GRACE", "3")
    monkeypatch.setenv("ZERODECK_HOST", "observer")  # records its own cards, judges the others
    _, fresh_run, silent_run = _two_hosts(3.0, monkeypatch)
    code, out, err = cli("hosts", "--json")
    assert code == 0, err
    hosts = {h["host"]: h for h in json.loads(out)}
    assert {"gpu-01", "gpu-02"} <= set(hosts)
    assert hosts["gpu-01"]["stale"] is False and hosts["gpu-02"]["stale"] is True
    assert hosts["gpu-01"]["runner_pid"] == os.getpid()
    cards = {c["index"]: c for c in hosts["gpu-01"]["cards"]}
    assert cards[1]["run_id"] == fresh_run and cards[1]["run_name"] == "tiny-gpu-01"
    assert cards[0]["foreign_pids"] == [4242] and cards[0]["run_id"] is None
    # `hosts` reconciled: gpu-02's claimed run was judged lost by its silence (no retry queued).
    code, out, _ = cli("show", str(silent_run), "--json")
    shown = json.loads(out)
    assert shown["outcome"] == "lost" and "host gpu-02 silent since" in shown["reason"]
    code, out, _ = cli("hosts")
    assert code == 0 and "(stale)" in out and "tiny-gpu-01" in out


def _app(store: Store) -> Any:
    return make_app(store, source=NoCards(), clock=lambda: datetime.now(timezone.utc), poll_interval=3600.0,
                    watch_interval=0.05, reconcile=False, with_host=False, mode="runs")


@pytest.mark.parametrize("burst", [False, True])
def test_the_hosts_screen_from_runs_with_keys_one_at_a_time_and_in_a_burst(
        burst: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    store, fresh_run, silent_run = _two_hosts(5.0, monkeypatch)  # room for a slow start of the app
    a = _app(store)

    async def press(pilot: Any, *keys: str) -> None:
        if burst:
            await pilot.press(*keys)
            await pilot.pause(0.3)
        else:
            for k in keys:
                await pilot.press(k)
                await pilot.pause(0.2)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: isinstance(a.screen, RunsScreen)
                    and a.screen.query_one("#runs", DataTable).row_count == 2)
        runs = a.screen
        assert isinstance(runs, RunsScreen) and runs.many_hosts
        table = runs.query_one("#runs", DataTable)
        assert "host" in [str(c.label) for c in table.columns.values()]
        hosts_of = {table.get_row(k)[1]: table.get_row(k)[3] for k in table.rows}
        assert hosts_of == {str(fresh_run): "gpu-01", str(silent_run): "gpu-02"}
        await press(pilot, "h")
        await until(pilot, lambda: isinstance(a.screen, HostsScreen) and a.screen.hosts is not None)
        screen = a.screen
        assert isinstance(screen, HostsScreen)
        rows = [screen.query_one("#hosts", DataTable).get_row_at(i) for i in range(4)]
        assert [str(r[0]) for r in rows] == ["gpu-01", "", "gpu-02", ""]
        assert "stale" in str(rows[2][1]) and "stale" not in str(rows[0][1])
        assert str(rows[1][3]) == f"{fresh_run} tiny-gpu-01" and str(rows[0][5]) == "4242"
        await press(pilot, "b")
        assert isinstance(a.screen, RunsScreen)
        await press(pilot, "h", "escape", "h", "escape")  # in and out twice
        assert isinstance(a.screen, RunsScreen) and len(a.screen_stack) == 1
        assert store.count_runs() == 2 and all(not store.stop_requested(i) for i in (fresh_run, silent_run))

    drive(a, body)


def test_one_hosts_runs_show_no_host_column(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.from_environment()
    store.save_snapshot(hash="h", name="tiny", toml="", source_path=None)
    for _ in range(2):
        store.add_run(name="tiny", recipe_hash="h", status="finished", outcome="succeeded", host="gpu-01")
    a = _app(store)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: isinstance(a.screen, RunsScreen)
                    and a.screen.query_one("#runs", DataTable).row_count == 2)
        table = a.screen.query_one("#runs", DataTable)
        assert "host" not in [str(c.label) for c in table.columns.values()]

    drive(a, body)


def test_compare_has_a_host_column_only_across_hosts(cli) -> None:
    store = Store.from_environment()
    store.save_snapshot(hash="h", name="tiny", toml="", source_path=None)
    a = store.add_run(name="tiny", recipe_hash="h", status="finished", outcome="succeeded", host="gpu-01")
    b = store.add_run(name="tiny", recipe_hash="h", status="finished", outcome="succeeded", host="gpu-01")
    code, out, _ = cli("compare", str(a), str(b), "--format", "json")
    assert code == 0 and "host" not in [c["key"] for c in json.loads(out)["columns"]]
    c = store.add_run(name="tiny", recipe_hash="h", status="finished", outcome="succeeded", host="gpu-02")
    code, out, _ = cli("compare", str(a), str(c), "--format", "json")
    data = json.loads(out)
    assert "host" in [col["key"] for col in data["columns"]]
    assert [r["host"] for r in data["rows"]] == ["gpu-01", "gpu-02"]
