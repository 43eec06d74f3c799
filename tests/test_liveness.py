"""The store never disagrees with reality (issue 11): whoever waits on a run notices a dead supervisor
within seconds and the run is recorded as its log proves; nothing in launching kills the queue runner;
a full disk ends a run with its reason instead of leaving it `running`.

Real processes throughout: the installed CLI in a subprocess, real supervisors, `command` recipes
running small Python programs that print the builtin trainer's JSON lines (no training, so seconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.launch_helpers import command_recipe, home_store, orphan_run, run_row, wait_for


def steps_program(total: int, every: float, hang_after: float = 0.0) -> str:
    """The builtin trainer's lines: `total` steps `every` seconds apart, the done line, then an optional hang."""
    return f"""
    import json, time
    for s in range(1, {total} + 1):
        print(json.dumps({{"zerodeck": "step", "step": s, "total_steps": {total}, "loss": 6.0 - s / 10,
                          "lr": 0.001, "samples_per_s": 40.0, "tokens_per_s": 2560.0, "rank": 0}}), flush=True)
        time.sleep({every})
    print(json.dumps({{"zerodeck": "done", "steps": {total}, "train_runtime": 1.0, "train_loss": 5.0,
                      "samples_per_s": 40.0, "tokens_per_s": 2560.0}}), flush=True)
    time.sleep({hang_after})
    """


def done_log(total: int = 3) -> str:
    lines = [json.dumps({"zerodeck": "step", "step": s, "total_steps": total, "loss": 6.0 - s / 10, "rank": 0})
             for s in range(1, total + 1)]
    lines.append(json.dumps({"zerodeck": "done", "steps": total, "train_runtime": 1.0, "train_loss": 5.0,
                             "samples_per_s": 40.0, "tokens_per_s": 2560.0}))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def foreground_run(zd_bin: str, recipe: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([zd_bin, "run", str(recipe), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def first_running_run() -> object:
    def look() -> object:
        runs = home_store().runs()
        run = runs[0] if runs else None
        return run if run is not None and run.status == "running" and run.steps_done else None

    return wait_for(look, 60, poll=0.1)


def kill_tagged(workdir: str) -> None:
    from zerodeck.core.launch.procs import kill_pids, tagged_pids, wait_gone

    kill_pids(tagged_pids(workdir), signal.SIGKILL)
    assert not wait_gone(workdir, 10)


def test_foreground_run_survives_a_killed_supervisor_and_the_job_is_readopted(zd_bin: str, tmp_path: Path) -> None:
    recipe = command_recipe(tmp_path, steps_program(total=14, every=0.5))
    with foreground_run(zd_bin, recipe) as proc:
        run = first_running_run()
        first_sup = run.supervisor_pid  # type: ignore[attr-defined]
        os.kill(first_sup, signal.SIGKILL)
        killed_at = time.monotonic()
        # The watcher notices and starts an adopter: the record names a live supervisor again.
        from zerodeck.core.launch.procs import supervisor_alive

        def adopted() -> bool:
            r = run_row(run.id)  # type: ignore[attr-defined]
            return r.supervisor_pid != first_sup and supervisor_alive(r.supervisor_pid, r.id, r.workdir)

        wait_for(adopted, 10, poll=0.1)
        assert time.monotonic() - killed_at < 10
        out, err = proc.communicate(timeout=7 + 10)
    assert proc.returncode == 0, err
    (brief,) = json.loads(out)
    assert brief["outcome"] == "succeeded" and brief["steps_done"] == 14
    final = run_row(brief["id"])
    assert final.exit_code is None and "exit status" not in (final.reason or "")
    assert [p.step for p in home_store().metrics(final.id)] == list(range(1, 15))
    assert "re-adopted" in Path(final.log_path).read_text()


def test_foreground_run_whose_supervisor_and_job_die_after_the_done_line_succeeds(zd_bin: str, tmp_path: Path) -> None:
    recipe = command_recipe(tmp_path, steps_program(total=3, every=0.1, hang_after=600))
    with foreground_run(zd_bin, recipe) as proc:
        run = first_running_run()
        wait_for(lambda: '"zerodeck": "done"' in Path(run.log_path).read_text(), 30, poll=0.1)  # type: ignore[attr-defined]
        os.kill(run.supervisor_pid, signal.SIGKILL)  # type: ignore[attr-defined]
        kill_tagged(run.workdir)  # type: ignore[attr-defined]
        killed_at = time.monotonic()
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - killed_at
    assert proc.returncode == 0, err
    assert took < 10
    (brief,) = json.loads(out)
    final = run_row(brief["id"])
    assert (final.outcome, final.exit_code, final.steps_done) == ("succeeded", None, 3)
    assert [p.step for p in home_store().metrics(final.id)] == [1, 2, 3]


def test_finished_but_unrecorded_run_is_succeeded_with_metrics_at_the_next_command(cli, zd_home: Path) -> None:
    run_id = orphan_run(zd_home, done_log(3))
    code, out, err = cli("runs", "--json")
    assert code == 0 and f"run {run_id}: supervisor was gone; recorded succeeded from its log" in err
    code, out, _ = cli("show", str(run_id), "--json")
    detail = json.loads(out)
    assert (detail["outcome"], detail["status"], detail["exit_code"]) == ("succeeded", "finished", None)
    assert [p["step"] for p in detail["metrics"]] == [1, 2, 3]
    assert detail["steps_done"] == 3 and detail["train_runtime_s"] == 1.0 and detail["tokens_per_s"] == 2560.0


def test_unrecorded_run_keeps_the_peaks_its_recorder_checkpointed(cli, zd_home: Path) -> None:
    from zerodeck.store.records import CardPeakRecord

    run_id = orphan_run(zd_home, done_log(3))
    home_store().replace_telemetry(run_id, [], [CardPeakRecord("npu-smi", "0", 20480.0, 2048.0, 65536.0),
                                                CardPeakRecord("host", "host", 90000.0, 1000.0, None)])
    cli("runs")
    run = run_row(run_id)
    assert run.outcome == "succeeded" and run.measured_peak_gib == 20.0  # the card's, never the host's


def test_logs_follow_ends_when_the_supervisor_is_dead(zd_bin: str, zd_home: Path) -> None:
    run_id = orphan_run(zd_home, done_log(2))
    done = subprocess.run([zd_bin, "logs", str(run_id), "-f"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert '"zerodeck": "done"' in done.stdout
    assert run_row(run_id).outcome == "succeeded"


@pytest.mark.sqlite_only
def test_reconcile_on_a_read_only_store_reads_and_writes_nothing(zd_home: Path) -> None:
    from zerodeck.core.launch import api
    from zerodeck.core.launch.reconcile import reconcile
    from zerodeck.store.api import Store

    run_id = orphan_run(zd_home, done_log(2))
    ro = Store.open(home_store().url, readonly=True)
    assert reconcile(ro) == []
    assert api.refresh(ro, run_id).status == "running"  # a watcher on it neither fails nor writes
    assert run_row(run_id).status == "running" and not home_store().metrics(run_id)


def test_runner_survives_an_internal_error_in_one_item(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch import preflight

    real_check = preflight.check

    def buggy(recipe, *args, **kwargs):  # type: ignore[no-untyped-def]
        if recipe.name == "buggy":
            raise ZeroDivisionError("division by zero")
        return real_check(recipe, *args, **kwargs)

    monkeypatch.setattr(preflight, "check", buggy)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad = command_recipe(tmp_path / "a", steps_program(total=2, every=0.05), name="buggy")
    good = command_recipe(tmp_path / "b", steps_program(total=2, every=0.05), name="fine")
    code, _, err = cli("queue", "add", str(bad), str(good))
    assert code == 0, err
    code, _, err = cli("runner", "--once")
    assert code == 0, err
    code, out, _ = cli("queue", "--json")
    first, second = json.loads(out)
    assert first["state"] == "failed" and "internal error: ZeroDivisionError: division by zero" in first["reason"]
    failed_run = run_row(first["run_id"])
    assert (failed_run.status, failed_run.outcome) == ("finished", "failed")
    assert failed_run.reason == "internal error: ZeroDivisionError: division by zero"
    assert second["state"] == "done" and run_row(second["run_id"]).outcome == "succeeded"


def test_runner_survives_an_internal_error_before_the_run_exists(cli, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch import api

    real_create = api.create_run
    calls = {"n": 0}

    def buggy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("boom")
        return real_create(*args, **kwargs)

    monkeypatch.setattr(api, "create_run", buggy)
    recipe = command_recipe(tmp_path, steps_program(total=1, every=0.05))
    cli("queue", "add", str(recipe), str(recipe))
    code, _, err = cli("runner", "--once")
    assert code == 0, err
    first, second = json.loads(cli("queue", "--json")[1])
    assert first["state"] == "failed" and first["reason"] == "failed: internal error: KeyError: 'boom'"
    assert first["run_id"] is None and second["state"] == "done"


# -- a full disk (tmpfs: root only) ---------------------------------------------------------------


@pytest.fixture
def small_home(tmpfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ZERODECK_HOME (the run directories) on the tmpfs, the store on the normal disk."""
    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    monkeypatch.setenv("ZERODECK_DB", f"sqlite:///{tmp_path / 'store.db'}")
    return tmpfs


@pytest.mark.sqlite_only
def test_read_commands_on_a_read_only_store_skip_the_reconcile(cli, tmpfs: Path, monkeypatch) -> None:
    from zerodeck.core.cli.context import forget_store
    from zerodeck.store.engine import reset_engines

    monkeypatch.setenv("ZERODECK_HOME", str(tmpfs))
    run_id = orphan_run(tmpfs, done_log(2))
    forget_store()
    reset_engines()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for argv in (["runs", "--json"], ["show", str(run_id), "--json"]):
        code, out, err = cli(*argv)
        assert code == 0, err
        assert "supervisor was gone" not in err
    assert json.loads(out)["status"] == "running"  # nothing could be written, and nothing failed


FLOOD = """
import json, sys
line = "x" * 4000
s = 0
while True:
    s += 1
    print(json.dumps({"zerodeck": "step", "step": s, "total_steps": 100000, "loss": 1.0, "rank": 0}), flush=True)
    print(line, flush=True)
"""


def test_full_disk_fails_the_run_with_its_reason_and_stops_the_job(cli, small_home: Path, tmp_path: Path) -> None:
    from zerodeck.core.cli.context import forget_store
    from zerodeck.core.launch.procs import tagged_pids

    forget_store()
    recipe = command_recipe(tmp_path, FLOOD)
    started = time.monotonic()
    code, out, err = cli("run", str(recipe), "--json")
    assert time.monotonic() - started < 60
    assert code == 1
    (brief,) = json.loads(out)
    run = run_row(brief["id"])
    assert (run.status, run.outcome) == ("finished", "failed")
    assert run.reason == f"no space left on {small_home}"
    assert f"no space left on {small_home}" in err
    tail = Path(run.log_path).read_text(errors="replace").rstrip().splitlines()[-1]
    assert tail.endswith(f"finished: failed (no space left on {small_home})")
    assert tagged_pids(run.workdir) == set()


def test_watchers_noticing_the_same_death_start_exactly_one_adopter(zd_home: Path) -> None:
    import sys
    import threading

    from zerodeck.core.launch.reconcile import reconcile

    run_id = orphan_run(zd_home, done_log(1).splitlines()[0] + "\n")
    row = run_row(run_id)
    env = {**os.environ, "ZERODECK_RUN_TAG": row.workdir}
    code = f"import time; time.sleep(3); open({row.log_path!r}, 'a').write({done_log(1)!r})"
    rank = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    results: list[list[tuple[int, str]]] = []
    barrier = threading.Barrier(6)

    def watcher() -> None:
        store = home_store()
        barrier.wait()
        results.append(reconcile(store))

    threads = [threading.Thread(target=watcher) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        final = wait_for(lambda: (r := run_row(run_id)).finished and r, 60)
    finally:
        rank.wait(30)
    # On failure, what each watcher did and what the adopters wrote (a second adopter is started
    # only when the first is seen gone: its stderr says why it went).
    said = (f"watchers: {results}\nsupervisor.log:\n{_read(Path(row.workdir) / 'supervisor.log')}\n"
            f"run.log:\n{_read(Path(row.log_path))}")
    assert sum(what == "adopted" for r in results for _, what in r) == 1, said
    assert final.outcome == "succeeded", said
    assert Path(row.log_path).read_text().count("supervisor re-adopted the run") == 1, said


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError as exc:
        return f"({exc.strerror})"


def test_run_whose_supervisor_died_of_a_full_disk_is_failed_by_the_next_command(cli, small_home: Path) -> None:
    run_id = orphan_run(small_home, done_log(2).splitlines()[0] + "\n")
    with contextlib.suppress(OSError), open(small_home / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert f"run {run_id}: supervisor was gone; recorded failed from its log" in err
    run = run_row(run_id)
    assert (run.outcome, run.reason) == ("failed", f"no space left on {small_home}")
    assert run.steps_done == 1


def test_a_full_disk_at_launch_fails_the_run_with_its_reason(cli, small_home: Path, tmp_path: Path) -> None:
    recipe = command_recipe(tmp_path, steps_program(total=1, every=0.01))
    (small_home / "runs").mkdir()
    with contextlib.suppress(OSError), open(small_home / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    code, _, err = cli("run", str(recipe))
    assert code == 1 and f"failed: no space left on {small_home}" in err
    (run,) = home_store().runs()
    assert (run.status, run.outcome, run.reason) == ("finished", "failed", f"no space left on {small_home}")


def test_a_run_its_supervisor_finishes_while_a_watcher_looks_is_not_concluded_again(zd_home: Path) -> None:
    """The interleaving behind a second conclusion (or a second adopter): a watcher that found the old
    supervisor gone takes the run lock and reads the run (a live supervisor, not finished); that
    supervisor records the end and exits; the watcher then sees it gone. Played in that order with a
    real process standing in for the supervisor (its command line and working directory are what
    the liveness check reads) and a store whose locked read lets it finish and exit right after."""
    import sys

    from zerodeck.core.launch.procs import SUPERVISOR_MODULE
    from zerodeck.core.launch.reconcile import reconcile_run
    from zerodeck.store.api import Store

    run_id = orphan_run(zd_home, done_log(1).splitlines()[0] + "\n")  # concluded alone: `lost`
    stale = run_row(run_id)  # as the watcher read it before: its dead first supervisor
    sup = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", SUPERVISOR_MODULE, str(run_id)],
                           cwd=stale.workdir, stdin=subprocess.PIPE)
    home_store().update_run(run_id, supervisor_pid=sup.pid)

    class SupervisorEndsAfterTheRead(Store):
        def run(self, rid: int) -> Any:
            record = super().run(rid)
            if sup.poll() is None:
                self.finish_run(rid, "succeeded")  # what the supervisor records last ...
                assert sup.stdin is not None
                sup.stdin.close()
                sup.wait(30)  # ... before it exits
            return record

    try:
        what = reconcile_run(SupervisorEndsAfterTheRead.open(home_store().url), stale)
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait(30)
    run = run_row(run_id)
    assert what is None, f"reconciled a run its supervisor had finished: {what}"
    assert (run.outcome, run.reason) == ("succeeded", None)
    assert "supervisor vanished" not in Path(run.log_path).read_text()
