"""The card ledger: holds unique per host and card, given back with the run, packing with bounded
backfill, isolation per run, the placement check, and the runner killed and restarted.

Real-run tests (marked slow) start real `zerodeck runner` processes on a real store; the npu-smi
tests replay a real captured table (tests/fixtures/npu-smi/info_910b3_25.2.0_procs_noname.txt,
whose card 2 carries a process zerodeck did not start)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.errors import BadInput
from zerodeck.core.launch import ledger
from zerodeck.core.launch.queue import Runner
from zerodeck.store.api import Store

from tests import fake_npusmi
from tests.launch_helpers import ROOT, command_recipe, demo_copy, home_store, wait_for

HOST = socket.gethostname()


def _sleeper(tmp: Path, name: str, seconds: float, cards: int = 2, device: str = "cpu") -> Path:
    """A command recipe holding `cards` cards for `seconds` (the supervisor's real path, no training)."""
    d = tmp / name
    d.mkdir(parents=True)
    path = command_recipe(d, f"import time; time.sleep({seconds})", name=name)
    text = path.read_text().replace("cards = 2", f"cards = {cards}").replace('device = "cpu"', f'device = "{device}"')
    path.write_text(text)
    return path


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERODECK_")}
    env.update({"ZERODECK_HOME": str(home), **extra})
    return env


def _zd(zd_bin: str, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([zd_bin, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _overlap(a: Any, b: Any) -> bool:
    return a.started_at < b.ended_at and b.started_at < a.ended_at


# -- parsing the host's cards ------------------------------------------------------------------


def test_card_lists_parse_and_bad_values_name_the_variable() -> None:
    assert ledger.parse_cards("0-5") == (0, 1, 2, 3, 4, 5)
    assert ledger.parse_cards("0,2,4") == (0, 2, 4)
    assert ledger.parse_cards(" 6, 0-1 ") == (0, 1, 6)
    for bad in ("", "a", "3-1", "1,,2", "-1"):
        with pytest.raises(BadInput, match="ZERODECK_CARDS"):
            ledger.parse_cards(bad)
    cfg = ledger.HostConfig.from_env({"ZERODECK_CPU_CARDS": "8", "ZERODECK_CARDS": "0,2-3"}, "h")
    assert cfg.cpu_cards == 8 and cfg.allowed == (0, 2, 3)
    assert ledger.HostConfig.from_env({}, "h").cpu_cards == (os.cpu_count() or 1)
    assert ledger.hccl_ports_per_card("8.5.RC1") == 32 and ledger.hccl_ports_per_card("8.0.0") == 16
    assert ledger.hccl_ports_per_card(None) == 16


@pytest.mark.parametrize(("var", "value"), [("ZERODECK_CARDS", "0-x"), ("ZERODECK_CPU_CARDS", "many"),
                                             ("ZERODECK_CPU_CARDS", "0")])
def test_bad_card_variables_are_one_line_exit_2(cli, monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    for args in (("runner", "--once"), ("hosts",)):
        code, _, err = cli(*args)
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"zerodeck: {var}=")


# -- the ledger in the store -------------------------------------------------------------------


def _queued(store: Store, tmp: Path, n: int) -> list[int]:
    from zerodeck.core.launch.queue import add
    from zerodeck.core.recipe import load_recipe_file

    path = _sleeper(tmp, "q", 0.1)
    return add(store, [(load_recipe_file(path), path)] * n)


def test_a_card_is_held_once_and_given_back_with_the_run(tmp_path: Path) -> None:
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.recipe import load_recipe_file

    store = home_store()
    a, b, c = _queued(store, tmp_path, 3)
    assert store.admit(a, HOST, [("cpu", 0), ("cpu", 1), ("port", 29600)], os.getpid())
    assert not store.admit(b, HOST, [("cpu", 1), ("cpu", 2)], os.getpid())  # card 1 is held
    assert not store.admit(b, HOST, [("cpu", 2), ("port", 29600)], os.getpid())  # so is the port
    assert store.queue_item(b).state == "pending" and len(store.holds()) == 3  # nothing half-taken
    assert store.admit(b, "other-host", [("cpu", 1)], os.getpid())  # another host's card 1
    assert not store.admit(a, HOST, [("cpu", 5)], os.getpid())  # an item is claimed once
    run_id = create_run(store, load_recipe_file(_sleeper(tmp_path, "r", 0)), None)
    store.bind_holds(a, run_id, host=HOST, card_ids=[0, 1], master_port=29600)
    run = store.run(run_id)
    assert run is not None and run.brief()["host"] == HOST and run.brief()["card_ids"] == [0, 1]
    assert {h.run_id for h in store.holds(HOST)} == {run_id}
    store.finish_run(run_id, "succeeded")
    assert store.holds(HOST) == [] and store.run(run_id).card_ids == (0, 1)  # the record keeps where it ran
    store.update_queue_item(c, state="failed")
    assert store.admit(c, HOST, [("cpu", 0)], os.getpid()) is False  # failed, not pending


def test_holds_of_a_dead_runner_are_freed_and_its_item_requeued(tmp_path: Path) -> None:
    store = home_store()
    (item,) = _queued(store, tmp_path, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.admit(item, HOST, [("cpu", 0), ("cpu", 1)], dead.pid)
    events: list[str] = []
    runner = Runner(store, on_event=events.append, config=ledger.HostConfig(HOST, 4))
    runner.recover()
    assert store.holds() == [] and store.queue_item(item).state == "pending"
    assert any("re-queued" in e for e in events)
    # A live runner's item in the making is left alone.
    assert store.admit(item, HOST, [("cpu", 0)], os.getpid())
    runner.recover()
    assert store.queue_item(item).state == "running" and len(store.holds()) == 1


def _race(url: str, items: list[int], worker: int, rounds: int, out: Any) -> None:
    import random

    store = Store.open(url)
    rng = random.Random(worker)
    won = []
    for _ in range(rounds):
        for item in items:
            cards = rng.sample(range(4), 2)
            if store.admit(item, "h", [("cpu", c) for c in cards], os.getpid()):
                won.append(item)
    out.put((worker, won))


def test_racing_admissions_never_hold_a_card_twice(tmp_path: Path) -> None:
    """Four processes admit 40 items onto 4 cards at once, over and over: every card is held at most
    once, and each item is claimed by exactly one of them."""
    store = home_store()
    items = _queued(store, tmp_path, 40)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store.url, items, w, 3, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    won = [i for _, got in results for i in got]
    assert len(won) == len(set(won))  # an item is claimed once
    held = [(h.kind, h.ident) for h in store.holds("h")]
    assert len(held) == len(set(held)) and len(held) <= 4
    assert len(won) == 2  # 4 cards, 2 each: the rest lost the race for good (nothing was released)


def test_migration_3_keeps_every_run_of_an_older_store(tmp_path: Path) -> None:
    src = ROOT / "tests" / "fixtures" / "store" / "zerodeck-v1.db"
    db = tmp_path / "old.db"
    shutil.copy(src, db)
    import sqlite3

    before = sqlite3.connect(db).execute("SELECT count(*) FROM run").fetchone()[0]
    store = Store.open(f"sqlite:///{db}")
    runs = store.runs()
    assert len(runs) == before > 0
    assert all(r.card_ids == () and r.placement is None for r in runs)
    assert "card_ids" in runs[0].brief() and "host" in runs[0].brief()
    assert store.holds() == [] and store.host_cards() == []
    # Opening it again (version 3 now) changes nothing.
    assert len(Store.open(f"sqlite:///{db}").runs()) == before


def test_hccl_blocks_are_disjoint_and_sized_by_cann(tmp_path: Path) -> None:
    store = home_store()
    a, b = _queued(store, tmp_path, 2)
    cfg = ledger.HostConfig(HOST, 8, hccl_per_card=32)
    first = ledger.hccl_slots(store, cfg, 2)
    assert len(first) == 4  # 2 cards x 32 ports in 16-port slots
    assert store.admit(a, HOST, [("hccl", s) for s in first], os.getpid())
    second = ledger.hccl_slots(store, cfg, 1)
    assert len(second) == 2 and not set(first) & set(second)


# -- the admission policy ----------------------------------------------------------------------


class _NoLaunch(Runner):
    """The real admission (store.admit, holds, queue order) with the run recorded but not launched:
    the policy test drives runs' ends itself."""

    started: list[tuple[int, list[int]]]

    def _start(self, item: Any, recipe: Any, cards: list[int]) -> bool:
        if not self.store.admit(item.id, self.config.host, [("cpu", c) for c in cards], os.getpid()):
            return False
        run_id = self.store.add_run(name=recipe.name, recipe_hash=item.recipe_hash, status="running",
                                    device="cpu", cards=len(cards), supervisor_pid=os.getpid())
        self.store.bind_holds(item.id, run_id, host=self.config.host, card_ids=cards)
        self.started.append((item.id, cards))
        return True


def test_backfill_is_bounded_so_a_large_run_does_not_starve(tmp_path: Path) -> None:
    from zerodeck.core.launch.queue import add
    from zerodeck.core.recipe import load_recipe_file

    store = home_store()
    big, small = _sleeper(tmp_path, "big", 0, cards=4), _sleeper(tmp_path, "small", 0, cards=1)
    # Cards 0-1 are taken by a run started outside the queue.
    other = store.add_run(name="other", recipe_hash=load_and_snap(store, small), status="running", device="cpu",
                          host=HOST, card_ids=[0, 1])
    ids = add(store, [(load_recipe_file(big), big)] + [(load_recipe_file(small), small)] * 8)
    runner = _NoLaunch(store, config=ledger.HostConfig(HOST, 4), max_bypass=3)
    runner.started = []
    runner._admit(ledger.observe(runner.config, None))
    assert [i for i, _ in runner.started] == ids[1:3]  # two small ones backfill cards 2 and 3
    _finish_all(store, runner)
    runner._admit(ledger.observe(runner.config, None))
    assert [i for i, _ in runner.started] == ids[1:4]  # one more: 3 have passed the big one now
    _finish_all(store, runner)
    runner._admit(ledger.observe(runner.config, None))
    assert len(runner.started) == 3  # cards 2 and 3 are free, but the big one reserves the host
    store.finish_run(other, "succeeded")
    runner._admit(ledger.observe(runner.config, None))
    assert runner.started[-1] == (ids[0], [0, 1, 2, 3])


def load_and_snap(store: Store, path: Path) -> str:
    from zerodeck.core.recipe import load_recipe_file
    from zerodeck.core.recipe.load import content_hash, to_toml

    recipe = load_recipe_file(path)
    store.save_snapshot(hash=content_hash(recipe), name=recipe.name, toml=to_toml(recipe), source_path=str(path))
    return content_hash(recipe)


def _finish_all(store: Store, runner: Runner) -> None:
    for h in store.holds(runner.config.host):
        if h.run_id is not None:
            store.finish_run(h.run_id, "succeeded")


def test_a_run_that_can_never_fit_fails_with_why(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_CPU_CARDS", "4")
    monkeypatch.setenv("ZERODECK_CARDS", "0-2")
    cli("queue", "add", str(_sleeper(tmp_path, "wide", 0, cards=4)))
    code, _, err = cli("runner", "--once")
    assert code == 0, err
    (item,) = json.loads(cli("queue", "--json")[1])
    assert item["state"] == "failed" and "hardware.cards = 4: this host offers 3" in item["reason"]


# -- npu-smi replay: a foreign process keeps its card out of the ledger --------------------------


def test_hosts_shows_the_foreign_process_of_a_replayed_capture(cli, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake_npusmi.replaying(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    code, out, err = cli("hosts", "--json")
    assert code == 0, err
    (host,) = json.loads(out)
    # issue 14 added last_heartbeat, stale and runner_pid (no runner beat here: stale, no pid)
    assert set(host) == {"host", "seen_at", "cards", "last_heartbeat", "stale", "runner_pid"} and host["host"] == HOST
    assert host["stale"] is True and host["runner_pid"] is None
    cards = {c["index"]: c for c in host["cards"]}
    assert sorted(cards) == list(range(8))
    assert set(cards[2]) == {"index", "run_id", "foreign_pids", "memory_used_mb", "memory_total_mb", "run_name"}
    assert cards[2]["foreign_pids"] == [1333928] and cards[2]["memory_used_mb"] == 41052
    assert all(cards[i]["foreign_pids"] == [] for i in cards if i != 2)
    assert cards[0]["memory_total_mb"] == 65536 and cards[0]["run_id"] is None


@pytest.mark.slow
def test_a_card_with_a_foreign_process_is_never_given(tmp_path: Path, zd_bin: str) -> None:
    fake_npusmi.replaying(tmp_path / "bin")
    env = _env(tmp_path / "home", PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    paths = [str(_sleeper(tmp_path, f"npu{i}", 2.0, cards=2, device="npu")) for i in range(4)]
    assert _zd(zd_bin, env, "queue", "add", *paths).returncode == 0
    done = _zd(zd_bin, env, "runner", "--once")
    assert done.returncode == 0, done.stderr
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'zerodeck.db'}")
    runs = store.runs()
    assert len(runs) == 4 and {r.outcome for r in runs} == {"succeeded"}, [(r.outcome, r.reason) for r in runs]
    assert all(2 not in r.card_ids and len(r.card_ids) == 2 for r in runs)
    # Ascend isolation: visible devices, and an HCCL block of 16 ports per card of its own.
    for r in runs:
        assert r.env["ASCEND_RT_VISIBLE_DEVICES"] == ",".join(map(str, r.card_ids))
        assert r.env["HCCL_IF_BASE_PORT"] == str(r.hccl_base_port) and r.hccl_ports == 32
    three = sorted(runs, key=lambda r: r.id)[:3]  # 7 usable cards: three at once, the fourth after
    blocks = [set(range(r.hccl_base_port, r.hccl_base_port + r.hccl_ports)) for r in three]
    assert not (blocks[0] & blocks[1] or blocks[0] & blocks[2] or blocks[1] & blocks[2])
    assert store.holds() == []


# -- real runs -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_demo_runs_pack_onto_eight_cpu_cards_and_a_fifth_waits(tmp_path: Path, zd_bin: str) -> None:
    env = _env(tmp_path / "home", ZERODECK_CPU_CARDS="8")
    recipe = demo_copy(tmp_path, 0, max_steps="2", samples="16")
    assert _zd(zd_bin, env, "queue", "add", *[str(recipe)] * 5).returncode == 0
    done = _zd(zd_bin, env, "runner", "--once", timeout=900)
    assert done.returncode == 0, done.stderr
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'zerodeck.db'}")
    runs = sorted(store.runs(), key=lambda r: r.id)
    assert [r.outcome for r in runs] == ["succeeded"] * 5, [(r.outcome, r.reason) for r in runs]
    first, fifth = runs[:4], runs[4]
    for a in first:  # all four ran at the same time
        assert all(_overlap(a, b) for b in first if b is not a)
    cards = [c for r in first for c in r.card_ids]
    assert sorted(cards) == list(range(8))  # disjoint, 2 each
    assert len({r.master_port for r in first}) == 4
    assert all(r.env["ZERODECK_VISIBLE_CARDS"] == ",".join(map(str, r.card_ids)) for r in runs)
    assert all(r.placement is None for r in runs)
    # The fifth waited for freed cards, then took them.
    assert fifth.started_at >= min(r.ended_at for r in first)
    assert all(not _overlap(fifth, r) for r in first if set(r.card_ids) & set(fifth.card_ids))
    assert store.holds() == []
    out = json.loads(_zd(zd_bin, env, "runs", "--json").stdout)
    assert {tuple(r["card_ids"]) for r in out} >= {tuple(r.card_ids) for r in first}
    assert all(r["host"] == HOST for r in out)


@pytest.mark.slow
def test_runner_killed_midway_and_restarted_holds_nothing_and_repeats_nothing(tmp_path: Path, zd_bin: str) -> None:
    env = _env(tmp_path / "home", ZERODECK_CPU_CARDS="4")
    paths = [str(_sleeper(tmp_path, f"s{i}", 3.0)) for i in range(5)]
    assert _zd(zd_bin, env, "queue", "add", *paths).returncode == 0
    store_url = f"sqlite:///{tmp_path / 'home' / 'zerodeck.db'}"
    runner = subprocess.Popen([zd_bin, "runner"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_for(lambda: sum(r.status == "running" for r in Store.open(store_url).runs()) >= 2, 60, poll=0.2)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    done = _zd(zd_bin, env, "runner", "--once")
    assert done.returncode == 0, done.stderr
    store = Store.open(store_url)
    runs = store.runs()
    assert sorted(r.name for r in runs) == [f"s{i}" for i in range(5)]  # each item ran once
    assert {r.outcome for r in runs} == {"succeeded"}
    assert [i.state for i in store.queue_items()] == ["done"] * 5
    assert store.holds() == []


@pytest.mark.slow
def test_two_runners_on_one_store_never_hold_a_card_twice(tmp_path: Path, zd_bin: str) -> None:
    db = tmp_path / "shared.db"
    for rnd in range(3):
        paths = [str(_sleeper(tmp_path / f"r{rnd}", f"t{i}", 0.5, cards=1 + i % 3)) for i in range(8)]
        envs = [_env(tmp_path / f"home{rnd}-{k}", ZERODECK_DB=f"sqlite:///{db}", ZERODECK_CPU_CARDS="4")
                for k in range(2)]
        assert _zd(zd_bin, envs[0], "queue", "add", *paths).returncode == 0
        procs = [subprocess.Popen([zd_bin, "runner", "--once"], env=e, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for e in envs]
        for p in procs:
            assert p.wait(300) == 0, p.stderr.read() if p.stderr else ""
    store = Store.open(f"sqlite:///{db}")
    runs = [r for r in store.runs() if r.card_ids]
    assert len(runs) == 24 and {r.outcome for r in runs} == {"succeeded"}
    assert [i.state for i in store.queue_items()] == ["done"] * 24
    for a in runs:
        for b in runs:
            if a.id < b.id and set(a.card_ids) & set(b.card_ids):
                assert not _overlap(a, b), (a.id, a.card_ids, b.id, b.card_ids)
    assert store.holds() == []


@pytest.mark.slow
def test_a_run_found_on_a_card_it_was_not_given_is_reported(tmp_path: Path, zd_bin: str) -> None:
    # The job ignores what it was given and starts its rank on card 7 (task-spooler #73 on CPU cards).
    program = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ, LOCAL_RANK='0', ZERODECK_VISIBLE_CARDS='7')\n"
        "subprocess.run([sys.executable, '-c', 'import time; time.sleep(6)'], env=env, check=True)\n"
    )
    d = tmp_path / "stray"
    d.mkdir()
    path = command_recipe(d, program, name="stray")
    env = _env(tmp_path / "home", ZERODECK_CPU_CARDS="8", ZERODECK_CARDS="0-3")
    assert _zd(zd_bin, env, "queue", "add", str(path)).returncode == 0
    done = _zd(zd_bin, env, "runner", "--once")
    assert done.returncode == 0 and "placement:" in done.stderr, done.stderr
    show = json.loads(_zd(zd_bin, env, "show", "1", "--json").stdout)
    assert show["card_ids"] == [0, 1] and "on card 7" in show["placement"]
    assert "placement:" in Path(show["log_path"]).read_text()
    assert isinstance(datetime.fromisoformat(show["started_at"]), datetime)


# -- the TUI: a whole grid into the queue, the cards a run holds ---------------------------------


@pytest.mark.parametrize("burst", [False, True])
def test_tui_queues_a_whole_grid_after_asking(burst: bool) -> None:
    from textual.widgets import DataTable

    from tests.tui_support import app, catalog_loaded, drive, store, until

    a = app(None)

    async def press(pilot: Any, *keys: str) -> None:
        if burst:
            await pilot.press(*keys)
            return
        for k in keys:
            await pilot.press(k)
            await pilot.pause(0.2)

    async def body(pilot: Any) -> None:
        await until(pilot, lambda: catalog_loaded(a))
        table = a.screen.query_one("#catalog", DataTable)
        keys = [str(k.value) for k in table.rows]
        grid = next(k for k in keys if k.startswith("g:qwen2.5-7b"))
        members = [r.name for r in a.screen.rows if r.grid == grid[2:]]
        table.move_cursor(row=keys.index(grid))
        await press(pilot, "a")
        await until(pilot, lambda: getattr(a.screen, "ready", False))
        assert store().queue_items() == []  # nothing before the answer
        await press(pilot, "y")
        await until(pilot, lambda: len(store().queue_items(states=["pending"])) == len(members))
        assert {i.recipe_name for i in store().queue_items()} == set(members) and len(members) > 1

    drive(a, body)


def test_runs_list_shows_the_cards_a_run_holds() -> None:
    from datetime import timezone

    from zerodeck.store.records import RunRecord
    from zerodeck.tui.screens.runs import run_cells

    now = datetime.now(timezone.utc)
    held = RunRecord(id=1, name="demo", recipe_hash="x", status="running", card_ids=(2, 3), started_at=now)
    done = RunRecord(id=2, name="demo", recipe_hash="x", status="finished", card_ids=(2, 3))
    assert run_cells(held, now)[2] == "demo [cards 2,3]" and run_cells(done, now)[2] == "demo"


@pytest.mark.slow
def test_serial_runner_keeps_one_run_at_a_time(tmp_path: Path, zd_bin: str) -> None:
    env = _env(tmp_path / "home", ZERODECK_CPU_CARDS="8")
    paths = [str(_sleeper(tmp_path, f"s{i}", 1.0, cards=1)) for i in range(3)]
    assert _zd(zd_bin, env, "queue", "add", *paths).returncode == 0
    done = _zd(zd_bin, env, "runner", "--once", "--serial")
    assert done.returncode == 0, done.stderr
    runs = sorted(Store.open(f"sqlite:///{tmp_path / 'home' / 'zerodeck.db'}").runs(), key=lambda r: r.id)
    assert [r.name for r in runs] == ["s0", "s1", "s2"] and {r.outcome for r in runs} == {"succeeded"}
    assert not any(_overlap(a, b) for a in runs for b in runs if a.id < b.id)
