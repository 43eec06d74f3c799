"""Runs started outside the queue take their cards through the card ledger too: `zerodeck run`,
`resume` (by hand or by the supervisor) and `probe` hold cards, a MASTER_PORT and (on Ascend) an HCCL
block like a queued run, a run whose cards are taken is refused with one line naming the holder, and
the holds go with the run's end.

The runs here are real supervisors of `command` recipes that sleep (the real launch path, no
training); one slow test runs two real 2-rank CPU demos at once."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from zerodeck.core.errors import OperationFailed
from zerodeck.core.launch import acquire, ledger
from zerodeck.store.api import Store

from tests import fake_npusmi
from tests.launch_helpers import demo_copy, home_store, wait_for
from tests.test_ledger import _env, _overlap, _sleeper, _zd, load_and_snap

HOST = socket.gethostname()


def _pinned(tmp: Path, name: str, devices: list[int], seconds: float = 0) -> Path:
    path = _sleeper(tmp, name, seconds, cards=len(devices))
    text = path.read_text().replace("[hardware]\n", f"[hardware]\ndevices = {devices}\n", 1)
    path.write_text(text)
    return path


def _wait_finished(store: Store, *ids: int) -> None:
    wait_for(lambda: all(store.run(i).finished for i in ids), timeout=120)


def test_two_direct_runs_get_disjoint_cards_and_ports_and_give_them_back(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_CPU_CARDS", "4")
    ids = []
    for name in ("a", "b"):
        code, out, err = cli("run", "--detach", str(_sleeper(tmp_path, name, 3)))
        assert code == 0, err
        ids.append(int(out))
    store = home_store()
    a, b = (store.run(i) for i in ids)
    assert a.host == b.host == HOST
    assert sorted(a.card_ids + b.card_ids) == [0, 1, 2, 3] and a.master_port != b.master_port
    held = {(h.kind, h.ident): h.run_id for h in store.holds(HOST)}
    assert held == {("cpu", 0): a.id, ("cpu", 1): a.id, ("cpu", 2): b.id, ("cpu", 3): b.id,
                    ("port", a.master_port): a.id, ("port", b.master_port): b.id}
    assert a.env["ZERODECK_VISIBLE_CARDS"] == "0,1" and b.env["ZERODECK_VISIBLE_CARDS"] == "2,3"
    _wait_finished(store, *ids)
    assert store.holds() == [] and {store.run(i).outcome for i in ids} == {"succeeded"}


def test_a_run_whose_cards_are_held_is_refused_in_one_line_and_nothing_starts(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_CPU_CARDS", "2")
    code, out, err = cli("run", "--detach", str(_sleeper(tmp_path, "first", 4)))
    assert code == 0, err
    first = int(out)
    code, out, err = cli("run", "--detach", str(_sleeper(tmp_path, "second", 0)))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("zerodeck: 2 free cpu card(s) needed, 0 free: "
                          f"cards 0,1 are held by run {first} (first)")
    code, out, err = cli("run", "--detach", str(_pinned(tmp_path, "pinned", [1, 0])))
    assert code == 1 and err.startswith(f"zerodeck: cards 0,1 are held by run {first} (first)"), err
    store = home_store()
    assert [r.id for r in store.runs()] == [first]  # the refused runs left no record
    _wait_finished(store, first)
    assert store.holds() == []
    code, out, err = cli("run", "--detach", str(_pinned(tmp_path, "pinned2", [1])))
    assert code == 0, err
    run = store.run(int(out))
    assert run.card_ids == (1,)  # the pinned card, now free
    _wait_finished(store, run.id)
    assert store.holds() == []


def test_direct_runs_and_the_queue_never_share_a_card(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch.queue import add
    from zerodeck.core.recipe import load_recipe_file

    monkeypatch.setenv("ZERODECK_CPU_CARDS", "4")
    store = home_store()
    path = _sleeper(tmp_path, "queued", 0)
    (item,) = add(store, [(load_recipe_file(path), path)])
    assert store.admit(item, HOST, [("cpu", 0), ("cpu", 1)], os.getpid())  # a runner is starting it
    code, out, err = cli("run", "--detach", str(_pinned(tmp_path, "pin0", [0])))
    assert code == 1 and "card 0 is held by a queue runner starting an item" in err
    code, out, err = cli("run", "--detach", str(_sleeper(tmp_path, "direct", 0)))
    assert code == 0, err
    run = store.run(int(out))
    assert run.card_ids == (2, 3)
    # ...and the runner's admission sees the direct run's holds.
    busy = ledger.busy_cards(store, ledger.HostConfig(HOST, 4))
    assert busy[("cpu", 2)] == busy[("cpu", 3)] == run.id
    _wait_finished(store, run.id)
    assert {(h.kind, h.ident) for h in store.holds()} == {("cpu", 0), ("cpu", 1)}


def test_a_recipe_pinning_cards_the_host_lacks_is_bad_input(cli, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_CPU_CARDS", "2")
    code, _, err = cli("run", "--detach", str(_pinned(tmp_path, "far", [5])))
    assert code == 2 and err.count("\n") == 1 and "hardware.devices [5]: not among this host's" in err
    assert home_store().runs() == []


def test_a_card_with_a_foreign_process_refuses_a_run_pinned_to_it(cli, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The real captured npu-smi table (card 2 runs a process zerodeck did not start), replayed."""
    fake_npusmi.replaying(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    path = _pinned(tmp_path, "on2", [2, 3])
    path.write_text(path.read_text().replace('device = "cpu"', 'device = "npu"'))
    code, out, err = cli("run", "--detach", str(path))
    assert code == 1 and err.count("\n") == 1, err
    assert "card 2 is used by processes zerodeck did not start (1333928)" in err
    assert home_store().runs() == [] and home_store().holds() == []


def test_a_resumed_run_takes_its_cards_from_the_ledger(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch.resume import resume_run

    monkeypatch.setenv("ZERODECK_CPU_CARDS", "4")
    code, out, err = cli("run", "--detach", str(_sleeper(tmp_path, "parent", 0)))
    assert code == 0, err
    store = home_store()
    parent = int(out)
    _wait_finished(store, parent)
    blocker = store.add_run(name="blocker", recipe_hash=store.run(parent).recipe_hash, status="running")
    assert store.hold_for_run(blocker, HOST, [("cpu", 0), ("cpu", 1)], os.getpid(), host=HOST, card_ids=[0, 1])
    host = acquire.LocalHost(ledger.HostConfig(HOST, 4))
    child = resume_run(store, parent, automatic=True, host=host)  # what the supervisor does
    run = store.run(child)
    assert run.parent_id == parent and run.card_ids == (2, 3)
    assert {h.ident for h in store.holds(HOST) if h.run_id == child and h.kind == "cpu"} == {2, 3}
    _wait_finished(store, child)
    store.finish_run(blocker, "succeeded")
    assert store.holds() == []


def test_a_probe_takes_free_cards_from_the_ledger(tmp_path: Path) -> None:
    from zerodeck.core.probe.run import probe
    from zerodeck.core.recipe import load_recipe_file

    store = home_store()
    path = _sleeper(tmp_path, "probed", 0)
    blocker = store.add_run(name="blocker", recipe_hash=load_and_snap(store, path), status="running")
    assert store.hold_for_run(blocker, HOST, [("cpu", 0), ("cpu", 1)], os.getpid(), host=HOST, card_ids=[0, 1])
    host = acquire.LocalHost(ledger.HostConfig(HOST, 4))
    res = probe(store, load_recipe_file(path), path, steps=1, timeout_s=60, host=host)
    run = store.run(res.run_id)
    assert run.finished and "probe" in run.tags and run.card_ids == (2, 3)
    assert {h.run_id for h in store.holds()} == {blocker}  # the probe's went with its end
    small = acquire.LocalHost(ledger.HostConfig(HOST, 2))
    with pytest.raises(OperationFailed, match=f"cards 0,1 are held by run {blocker} \\(blocker\\)"):
        probe(store, load_recipe_file(path), path, steps=1, timeout_s=60, host=small)


def test_held_ports_and_hccl_blocks_are_not_given_twice(tmp_path: Path) -> None:
    """Two direct NPU runs (no npu-smi here: the ledger alone decides) get disjoint cards, ports and
    HCCL blocks; a fixed master_port already held is refused naming its holder."""
    from zerodeck.core.launch.api import create_run
    from zerodeck.core.recipe import load_recipe_file

    store = home_store()
    host = acquire.LocalHost(ledger.HostConfig(HOST, 2, hccl_per_card=32))
    recipe = load_recipe_file(_sleeper(tmp_path, "npu", 0, device="npu"))
    got = []
    for _ in range(2):
        run_id = create_run(store, recipe, None)
        got.append(acquire.take(store, run_id, recipe, host, None))
    a, b = got
    assert a.card_ids == (0, 1) and b.card_ids == (2, 3) and a.master_port != b.master_port
    assert a.hccl_ports == b.hccl_ports == 64
    assert a.hccl_base_port is not None and b.hccl_base_port is not None
    assert not set(range(a.hccl_base_port, a.hccl_base_port + 64)) & set(range(b.hccl_base_port, b.hccl_base_port + 64))
    fixed = recipe.model_copy(update={"launch": recipe.launch.model_copy(
        update={"options": {**recipe.launch.options, "master_port": a.master_port}})})
    with pytest.raises(OperationFailed, match=f"master_port {a.master_port} is held by run 1 \\(npu\\)"):
        acquire.take(store, create_run(store, fixed, None), fixed, host, None)


@pytest.mark.slow
def test_two_real_demo_runs_started_directly_share_no_card_or_port(tmp_path: Path, zd_bin: str) -> None:
    env = _env(tmp_path / "home", ZERODECK_CPU_CARDS="4")
    recipe = demo_copy(tmp_path, 0, max_steps="3", samples="16")
    ids = []
    for _ in range(2):
        done = _zd(zd_bin, env, "run", "--detach", "--json", str(recipe))
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)[0]["id"])
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'zerodeck.db'}")
    wait_for(lambda: all(store.run(i).finished for i in ids), timeout=600, poll=1.0)
    a, b = (store.run(i) for i in ids)
    assert (a.outcome, b.outcome) == ("succeeded", "succeeded"), [(a.reason, b.reason)]
    assert _overlap(a, b)  # they ran at the same time
    assert not set(a.card_ids) & set(b.card_ids) and len(a.card_ids) == len(b.card_ids) == 2
    assert a.master_port != b.master_port
    assert a.env["ZERODECK_VISIBLE_CARDS"] != b.env["ZERODECK_VISIBLE_CARDS"]
    assert store.holds() == []
