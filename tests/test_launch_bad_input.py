"""Runs that cannot start: a clear line, the run recorded `failed` with that reason, nothing lost.

None of these trains: each fails before a rank starts, so they run in the fast suite.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

from tests.launch_helpers import demo_copy, run_row


def _script_recipe(tmp: Path, backend: str, script: str, path_env: str) -> Path:
    text = demo_copy(tmp, 3).read_text().replace(
        '[launch]\nbackend = "builtin"',
        f'[launch]\nbackend = "{backend}"\nscript = "{script}"\nenv = {{ PATH = "{path_env}" }}')
    p = tmp / f"{backend}.toml"
    p.write_text(text)
    return p


def _runs(cli) -> list[dict]:
    code, out, _ = cli("runs", "--json")
    assert code == 0
    return json.loads(out)


def test_missing_deepspeed_binary_is_recorded_failed(cli, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    empty = tmp_path / "emptybin"
    empty.mkdir()
    code, out, err = cli("run", str(_script_recipe(tmp_path, "deepspeed", "train.py", str(empty))))
    assert code == 1
    assert "deepspeed: not found on PATH" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    runs = _runs(cli)
    assert [(r["outcome"], r["status"]) for r in runs] == [("failed", "finished")]
    assert "deepspeed: not found on PATH" in runs[0]["reason"]
    # The attempt is still fully recorded: argv, rendered files, versions.
    row = run_row(runs[0]["id"])
    assert row.argv[0] == "deepspeed" and "ds_config.json" in row.rendered


def test_missing_torchrun_binary(cli, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    code, _, err = cli("run", str(_script_recipe(tmp_path, "torchrun", "train.py", str(tmp_path))))
    assert code == 1 and "torchrun: not found on PATH" in err


def test_missing_script(cli, tmp_path: Path) -> None:
    # Bad input caught when the recipe is read: one located line, exit 2, nothing recorded
    # (a script that goes away after loading is the preflight's: tests/test_recipe_files.py).
    venv_bin = str(Path(sys.executable).parent)
    recipe = _script_recipe(tmp_path, "torchrun", "nope.py", venv_bin)
    code, _, err = cli("run", str(recipe))
    assert code == 2
    assert f"{recipe}:" in err and "launch.script:" in err and "nope.py: no such file" in err
    assert _runs(cli) == []


def test_taken_port(cli, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        recipe = demo_copy(tmp_path, 0, __extra__=f"options = {{ master_port = {port} }}\n")
        code, _, err = cli("run", str(recipe))
    assert code == 1 and f"master port {port} is already in use" in err
    run = _runs(cli)[0]
    assert run["outcome"] == "failed" and str(port) in run["reason"]


def test_unwritable_run_directory(cli, tmp_path: Path, zd_home: Path) -> None:
    zd_home.mkdir(parents=True, exist_ok=True)
    (zd_home / "runs").write_text("not a directory")  # works even as root, where chmod would not
    code, _, err = cli("run", str(demo_copy(tmp_path, 0)))
    assert code == 1 and "cannot write the run directory" in err
    run = _runs(cli)[0]
    assert run["outcome"] == "failed" and "run directory" in run["reason"]


def test_detach_reports_failure_and_keeps_going(cli, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    bad = _script_recipe(tmp_path, "deepspeed", "train.py", str(tmp_path))
    code, out, err = cli("run", "--detach", str(bad), str(bad))
    assert code == 1 and err.count("not found on PATH") == 2
    assert len(_runs(cli)) == 2


def test_queue_survives_deleted_recipe_and_failures(cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    gone = demo_copy(tmp_path / "a", 0)
    (tmp_path / "b" / "train.py").write_text("")
    nobin = _script_recipe(tmp_path / "b", "deepspeed", "train.py", str(tmp_path))
    code, out, _ = cli("queue", "add", str(gone), str(nobin))
    assert code == 0 and out.split() == ["1", "2"]
    gone.unlink()
    code, _, err = cli("runner", "--once")
    assert code == 0
    assert "no longer exists" in err and "not found on PATH" in err
    code, out, _ = cli("queue", "--json")
    items = json.loads(out)
    assert [i["state"] for i in items] == ["failed", "failed"]
    assert "no longer exists" in items[0]["reason"]
    runs = {r["id"]: r for r in _runs(cli)}
    assert {r["outcome"] for r in runs.values()} == {"failed"}
    assert "no longer exists" in runs[items[0]["run_id"]]["reason"]
    # Running the runner again repeats nothing.
    code, _, err = cli("runner", "--once")
    assert code == 0 and len(_runs(cli)) == 2


def test_queue_requeues_an_item_its_runner_never_started(cli, tmp_path: Path) -> None:
    from zerodeck.core.launch.queue import Runner

    from tests.launch_helpers import home_store

    (tmp_path / "train.py").write_text("")
    nobin = _script_recipe(tmp_path, "deepspeed", "train.py", str(tmp_path))
    cli("queue", "add", str(nobin))
    store = home_store()
    assert store.claim_next() is not None  # a runner claimed it, then died before starting it
    events: list[str] = []
    assert Runner(store, on_event=events.append).serve(once=True) == 1
    assert any("re-queued" in e for e in events)
    (item,) = store.queue_items()
    assert item.state == "failed" and item.run_id is not None


def test_second_runner_is_refused(cli, tmp_path: Path) -> None:
    from zerodeck.core.launch.queue import Runner

    from tests.launch_helpers import home_store

    first = Runner(home_store())
    first.lock()
    code, _, err = cli("runner", "--once")
    assert code == 1 and "another queue runner is active" in err


def test_run_unknown_recipe_is_bad_input(cli) -> None:
    code, _, err = cli("run", "no-such-recipe")
    assert code == 2 and "no-such-recipe" in err
    code, _, err = cli("run", "/nonexistent/x.toml")
    assert code == 2 and "no such recipe file" in err


def test_show_and_stop_unknown_run(cli) -> None:
    assert cli("show", "99")[0] == 2
    assert cli("stop", "99")[0] == 2
