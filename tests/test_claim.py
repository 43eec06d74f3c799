"""Claims are leases with fencing tokens (issue 14): runners on several hosts share one store.

The store-level tests run on SQLite and on a real PostgreSQL (`backend_url`); the real-process tests
start real `zerodeck runner` processes, each with its own ZERODECK_HOST and home (two "servers" on one
machine) and one shared store, on both backends too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from zerodeck.core.launch.reconcile import judge_hosts, reconcile
from zerodeck.store.api import LeaseLost, Store
from zerodeck.store.records import HostCardRecord

from tests.launch_helpers import command_recipe, wait_for


@pytest.fixture
def store(backend_url: str, zd_home: Path) -> Store:
    """A fresh store on each backend (SQLite in the test's home, or a fresh PostgreSQL database)."""
    zd_home.mkdir(parents=True, exist_ok=True)
    return Store.open(backend_url)


def _item(store: Store, host: str | None = None) -> int:
    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    return store.enqueue("r.toml", "h", host=host)


def _claimed_run(store: Store, host: str) -> tuple[int, int, int]:
    """(item, token, run) of an item claimed by `host` holding cpu card 0, its run made and bound."""
    item = _item(store)
    token = store.claim(item, host, [("cpu", 0)], os.getpid())
    assert token is not None
    run_id = store.add_run(name="r", recipe_hash="h", status="running")
    store.bind_claim(item, token, run_id, host=host, card_ids=[0])
    return item, token, run_id


def test_claim_tokens_rise_and_a_pinned_item_goes_only_to_its_host(store: Store) -> None:
    pinned = _item(store, host="gpu-02")
    assert [i.id for i in store.queue_items(states=["pending"], for_host="gpu-01")] == []
    assert store.claim(pinned, "gpu-01", [], os.getpid()) is None  # not its host
    assert store.claim(pinned, "gpu-02", [], os.getpid()) == 1
    assert store.claim(pinned, "gpu-02", [], os.getpid()) is None  # claimed once
    (rec,) = store.queue_items(item_id=pinned)
    assert (rec.host, rec.lease_host, rec.claim_token, rec.state) == ("gpu-02", "gpu-02", 1, "running")
    assert rec.as_dict()["host"] == "gpu-02"


def test_a_stale_token_writes_nothing(store: Store) -> None:
    item, token, run_id = _claimed_run(store, "gpu-02")
    fenced = store.fenced(run_id, token, host="gpu-02")
    fenced.upsert_metrics(run_id, [{"step": 1, "loss": 2.0}])
    fenced.update_run(run_id, steps_done=1)
    assert fenced.stop_requested(run_id) is False  # reads the token, and beats for gpu-02
    assert {h.name for h in store.hosts()} == {"gpu-02"}
    # Another host judges gpu-02 silent (as seen from the future) and takes the claim over.
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    assert judge_hosts(store, "gpu-01", 60.0, now=later) == [(run_id, "lost")]
    lost = store.run(run_id)
    assert lost is not None and lost.outcome == "lost" and "host gpu-02 silent since" in (lost.reason or "")
    assert store.run_claim_token(run_id) == token + 1
    for write in (lambda: fenced.upsert_metrics(run_id, [{"step": 2, "loss": 1.0}]),
                  lambda: fenced.update_run(run_id, steps_done=2, status="running"),
                  lambda: fenced.add_event(run_id, "stalled", "x"),
                  lambda: fenced.finish_run(run_id, "succeeded"),
                  lambda: fenced.stop_requested(run_id)):
        with pytest.raises(LeaseLost, match=f"run {run_id}: claim token {token} no longer holds"):
            write()
    after = store.run(run_id)
    assert after is not None and (after.outcome, after.steps_done, after.status) == ("lost", 1, "finished")
    assert [p.step for p in store.metrics(run_id)] == [1] and store.events(run_id) == []
    (rec,) = store.queue_items(item_id=item)
    assert rec.state == "failed" and f"run {run_id}: lost: host gpu-02" in (rec.reason or "")
    assert store.holds() == []  # its card went back with the loss
    with pytest.raises(LeaseLost):  # the old runner cannot settle the item either
        store.finish_item(item, token, state="done")


def test_a_host_that_beats_keeps_its_runs_and_a_silent_one_loses_them_once(store: Store) -> None:
    _, _, run_id = _claimed_run(store, "gpu-02")
    store.heartbeat("gpu-02", runner_pid=1, cards=[HostCardRecord("gpu-02", 0, 1.0, 2.0, ())], lease_s=60)
    assert judge_hosts(store, "gpu-01", 60.0) == []  # it beat just now
    run = store.run(run_id)
    assert run is not None and not run.finished
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    assert judge_hosts(store, "gpu-01", 60.0, now=later) == [(run_id, "lost")]
    assert judge_hosts(store, "gpu-01", 60.0, now=later) == []  # never twice, never retried
    assert store.queue_items(states=["pending"]) == []
    # Its own host never judges it by heartbeat.
    _, _, mine = _claimed_run(store, "gpu-01")
    assert judge_hosts(store, "gpu-01", 60.0, now=later + timedelta(hours=1)) == []
    assert store.run(mine) is not None and not store.run(mine).finished  # type: ignore[union-attr]


def test_an_expired_claim_whose_run_was_never_made_goes_back_to_the_queue(store: Store) -> None:
    item = _item(store)
    stale = store.claim(item, "gpu-02", [("cpu", 0), ("port", 29500)], os.getpid(), lease_s=0.2)
    assert stale == 1 and len(store.holds()) == 2
    assert store.expire_claims() == []  # still leased
    time.sleep(0.4)
    assert store.expire_claims() == [(item, "pending")]
    assert store.holds() == []
    fresh = store.claim(item, "gpu-01", [("cpu", 0)], os.getpid())
    assert fresh == 3  # claimed, taken back, claimed again: every step raised the token
    run_id = store.add_run(name="r", recipe_hash="h")
    with pytest.raises(LeaseLost):  # the first holder wakes up: its run cannot be bound
        store.bind_claim(item, stale, run_id, host="gpu-02")
    store.bind_claim(item, fresh, run_id, host="gpu-01")
    assert store.run_claim_token(run_id) == fresh


def test_local_reconcile_never_judges_another_hosts_processes(store: Store) -> None:
    """A run on another host, whose supervisor pid means nothing here, is left alone (it has no claim,
    so only its own host can judge it)."""
    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    run_id = store.add_run(name="r", recipe_hash="h", status="running", host="somewhere-else",
                           supervisor_pid=999_999_999, created_at=old, workdir="/nonexistent/run")
    assert reconcile(store) == []
    run = store.run(run_id)
    assert run is not None and run.status == "running"


def test_zerodeck_host_grace_is_checked_at_the_entry(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_HOST_GRACE", "soon")
    code, _, err = cli("queue", "--json")
    assert code == 2 and err.count("\n") == 1 and "ZERODECK_HOST_GRACE='soon'" in err


def test_queue_add_host_pins_and_lists_the_host(cli, tmp_path: Path) -> None:
    path = command_recipe(tmp_path, "pass", name="pinned")
    code, out, err = cli("queue", "add", str(path), "--host", "gpu-02", "--json")
    assert code == 0, err
    (item,) = json.loads(cli("queue", "--json")[1])
    assert item["host"] == "gpu-02" and item["claimed_by"] is None and item["state"] == "pending"
    code, out, _ = cli("queue")
    assert "gpu-02" in out
    code, _, err = cli("queue", "add", str(path), "--host", "bad name")
    assert code == 2 and "--host 'bad name'" in err


# -- real runners on one store --------------------------------------------------------------------


def _env(home: Path, url: str, host: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZERODECK_")}
    env.update({"ZERODECK_HOME": str(home), "ZERODECK_DB": url, "ZERODECK_HOST": host,
                "ZERODECK_CPU_CARDS": "2", **extra})
    return env


def _marking(tmp: Path, name: str, marks: Path, seconds: float) -> Path:
    """A one-card command recipe that appends its name to `marks` when it starts: a run started twice
    leaves two lines."""
    d = tmp / name
    d.mkdir(parents=True)
    prog = (f"import sys, time\nopen({str(marks)!r}, 'a').write({name!r} + ' ' + sys.argv[1] + '\\n')\n"
            f"time.sleep({seconds})\n")
    path = command_recipe(d, prog, name=name)
    path.write_text(path.read_text().replace("cards = 2", "cards = 1"))
    return path


def _store_url(request: pytest.FixtureRequest, backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_hosts_drain_one_queue_each_run_once_pinned_runs_on_their_host(
        request: pytest.FixtureRequest, backend: str, tmp_path: Path, zd_bin: str) -> None:
    url = _store_url(request, backend, tmp_path)
    marks = tmp_path / "marks.txt"
    paths = [str(_marking(tmp_path, f"job{i}", marks, 1.0)) for i in range(8)]
    alpha = _env(tmp_path / "alpha", url, "alpha")
    beta = _env(tmp_path / "beta", url, "beta")
    assert subprocess.run([zd_bin, "queue", "add", *paths[:6]], env=alpha, capture_output=True).returncode == 0
    assert subprocess.run([zd_bin, "queue", "add", *paths[6:], "--host", "beta"], env=alpha,
                          capture_output=True).returncode == 0
    runners = [subprocess.Popen([zd_bin, "runner", "--once"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for env in (alpha, beta)]
    errs = [p.communicate(timeout=240)[1] for p in runners]
    assert [p.returncode for p in runners] == [0, 0], errs
    store = Store.open(url)
    items = store.queue_items()
    assert [i.state for i in items] == ["done"] * 8, [(i.id, i.state, i.reason) for i in items]
    runs = {r.id: r for r in store.runs()}
    assert len(runs) == 8 and len({i.run_id for i in items}) == 8  # one run per item
    lines = marks.read_text().splitlines()
    names = sorted(line.split()[0] for line in lines)
    assert names == sorted(f"job{i}" for i in range(8)), lines  # each job started exactly once
    hosts = {i.id: runs[i.run_id].host for i in items if i.run_id is not None}
    assert all(hosts[i.id] == "beta" for i in items[6:])  # pinned
    assert {"alpha", "beta"} <= set(hosts.values()), hosts  # both servers took work
    assert store.holds() == []
    assert {h.name for h in store.hosts()} == {"alpha", "beta"}


_CLAIM_AND_DIE = """
import os, signal, sys
from zerodeck.store.api import Store
store = Store.open(sys.argv[1])
(item,) = store.queue_items(states=["pending"])
token = store.claim(item.id, "gamma", [("cpu", 0), ("port", 29777)], os.getpid(), lease_s=float(sys.argv[2]))
assert token == 1, token
os.kill(os.getpid(), signal.SIGKILL)  # mid-claim: the item claimed, its cards held, no run made
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_runner_killed_mid_claim_strands_nothing(request: pytest.FixtureRequest, backend: str,
                                                   tmp_path: Path, zd_bin: str) -> None:
    """A claim's lease runs out when its holder dies before making the run: another host's runner puts
    the item back and runs it, once (nothing had started, so this is not a retry)."""
    url = _store_url(request, backend, tmp_path)
    marks = tmp_path / "marks.txt"
    beta = _env(tmp_path / "beta", url, "beta", ZERODECK_HOST_GRACE="2")
    path = _marking(tmp_path, "only", marks, 0.2)
    assert subprocess.run([zd_bin, "queue", "add", str(path)], env=beta, capture_output=True).returncode == 0
    died = subprocess.run([sys.executable, "-c", _CLAIM_AND_DIE, url, "2"], capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr
    store = Store.open(url)
    (held,) = store.queue_items()
    assert held.state == "running" and held.lease_host == "gamma" and len(store.holds()) == 2
    assert held.lease_expires_at is not None
    # Until the lease runs out the item is gamma's (`runner --once` on beta would find nothing to do).
    time.sleep(max(0.0, (held.lease_expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    done = subprocess.run([zd_bin, "runner", "--once"], env=beta, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (item,) = store.queue_items()
    assert item.state == "done" and item.claim_token == 3, item  # claimed, expired, claimed by beta
    run = store.run(item.run_id or 0)
    assert run is not None and run.host == "beta" and run.outcome == "succeeded"
    assert len(marks.read_text().splitlines()) == 1
    assert store.holds() == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_silent_hosts_run_is_lost_and_its_supervisor_fenced_off(request: pytest.FixtureRequest, backend: str,
                                                                   tmp_path: Path, zd_bin: str) -> None:
    """Host alpha falls silent (its runner killed, its supervisor frozen): beta records alpha's run
    `lost`, naming the host. When alpha's supervisor wakes, its writes are refused: it stops the job
    and says so in the run's log, and nothing it would have written lands."""
    url = _store_url(request, backend, tmp_path)
    marks = tmp_path / "marks.txt"
    alpha = _env(tmp_path / "alpha", url, "alpha", ZERODECK_HOST_GRACE="3")
    beta = _env(tmp_path / "beta", url, "beta", ZERODECK_HOST_GRACE="3")
    path = _marking(tmp_path, "long", marks, 60.0)
    assert subprocess.run([zd_bin, "queue", "add", str(path), "--host", "alpha"], env=alpha,
                          capture_output=True).returncode == 0
    runner = subprocess.Popen([zd_bin, "runner"], env=alpha, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(url)
    try:
        run = wait_for(lambda: next((r for r in store.runs() if r.status == "running" and r.supervisor_pid), None),
                       60)
        wait_for(lambda: marks.exists(), 30, poll=0.2)
    finally:
        runner.kill()
        runner.wait()
    sup = run.supervisor_pid
    os.kill(sup, signal.SIGSTOP)  # the whole host is silent now
    try:
        judged = subprocess.Popen([zd_bin, "runner"], env=beta, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        try:
            lost = wait_for(lambda: (r := store.run(run.id)) is not None and r.finished and r, 30, poll=0.3)
        finally:
            judged.terminate()
            judged.wait(timeout=30)
        assert lost.outcome == "lost" and "host alpha silent since" in (lost.reason or ""), lost.reason
        assert store.holds() == []
        (item,) = store.queue_items()
        assert item.state == "failed" and store.queue_items(states=["pending"]) == []  # not retried
    finally:
        os.kill(sup, signal.SIGCONT)
    log = Path(run.log_path or "")
    wait_for(lambda: "lease lost" in log.read_text(), 30, poll=0.3)
    wait_for(lambda: not _alive(sup), 30, poll=0.3)
    from zerodeck.core.launch import procs

    wait_for(lambda: not procs.tagged_pids(run.workdir), 30, poll=0.3)  # the job was stopped with it
    after = store.run(run.id)
    assert after is not None and after.outcome == "lost" and after.reason == lost.reason
    assert after.ended_at == lost.ended_at and after.exit_code is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_stopping_another_hosts_run_only_asks_its_supervisor(store: Store) -> None:
    """Only the run's own host can signal its processes: here the stop is a request in the store,
    which that host's supervisor reads every second; no end is recorded on its behalf."""
    from zerodeck.core.errors import OperationFailed
    from zerodeck.core.launch.api import stop_run

    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    run_id = store.add_run(name="r", recipe_hash="h", status="running", host="somewhere-else",
                           supervisor_pid=999_999_999, workdir="/nonexistent/run")
    with pytest.raises(OperationFailed, match="runs on host somewhere-else: asked to stop"):
        stop_run(store, run_id, wait=0.6)
    run = store.run(run_id)
    assert run is not None and run.status == "running" and store.stop_requested(run_id)


def test_a_claim_skips_an_item_another_runner_is_claiming_on_postgresql(pg_url: str) -> None:
    """`FOR UPDATE SKIP LOCKED`: while another transaction holds the item's row, a claim moves on at
    once (None) instead of waiting for it; once that transaction ends, the item can be claimed."""
    import threading

    from sqlalchemy import text

    store = Store.open(pg_url)
    item = _item(store)
    got: list[int | None] = []
    with store.engine.connect() as other:
        other.execute(text("SELECT id FROM queue_item WHERE id = :i FOR UPDATE"), {"i": item})
        t = threading.Thread(target=lambda: got.append(store.claim(item, "gpu-01", [], os.getpid())), daemon=True)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive() and got == [None]  # skipped, not blocked
        other.rollback()
    assert store.claim(item, "gpu-01", [], os.getpid()) == 1


def test_migration_5_on_an_old_store_keeps_its_queue_and_is_idempotent(tmp_path: Path) -> None:
    import shutil

    from zerodeck.store.migrations import MIGRATIONS
    from zerodeck.store.models import SCHEMA_VERSION

    db = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "store" / "zerodeck-v1.db", db)
    import sqlite3

    with sqlite3.connect(db) as old:  # an item queued by the old version, still waiting
        old.execute("INSERT INTO queue_item (recipe_ref, state, added_at) VALUES ('a.toml', 'pending', "
                    "'2025-01-01 00:00:00.000000')")
    store = Store.open(f"sqlite:///{db}")
    assert SCHEMA_VERSION >= 5
    before = store.queue_items()
    assert [(i.recipe_ref, i.state, i.claim_token, i.host, i.lease_host) for i in before] == [
        ("a.toml", "pending", 0, None, None)]
    with store.engine.begin() as conn:
        MIGRATIONS[5](conn)  # a second time: nothing to add, nothing lost
    assert store.queue_items() == before
    item = _item(store)
    assert store.claim(item, "gpu-01", [], os.getpid()) == 1
