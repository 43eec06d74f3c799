"""Every local file a recipe names is checked before anything starts: `recipes validate`, `plan`,
`run` (exit 2, `PATH:LINE: field: message`) and the launch preflight (a file gone since loading).

Real files in tmp directories and the real CLI in-process; the preflight test uses the real store
and launch API (it fails before any process is spawned).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from zerodeck.core.errors import OperationFailed
from zerodeck.core.launch import api
from zerodeck.core.recipe.load import load_recipe_file
from zerodeck.store.api import Store

from .launch_helpers import demo_copy

ROOT = Path(__file__).resolve().parent.parent


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _missing_data(tmp_path: Path) -> Path:
    return demo_copy(tmp_path, 3, path='"data/gone.jsonl"')


def test_validate_and_plan_refuse_a_missing_data_file(cli, tmp_path: Path, monkeypatch) -> None:
    recipe = _missing_data(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths resolve against the recipe's folder, not the cwd
    want = f"{recipe}:{_line_of(recipe, 'gone.jsonl')}: data.path: {tmp_path / 'data' / 'gone.jsonl'}: no such file"
    code, out, err = cli("recipes", "validate", str(recipe))
    assert code == 2 and out.splitlines() == [want]
    code, out, err = cli("plan", str(recipe))
    assert (code, out, err) == (2, "", f"zerodeck: {want}\n")
    code, out, err = cli("plan", str(recipe), "--json")
    assert code == 2 and out == ""


def test_the_demo_with_its_data_is_valid_from_any_directory(cli, tmp_path: Path, monkeypatch) -> None:
    recipe = demo_copy(tmp_path, 3)
    monkeypatch.chdir(tmp_path.parent)
    assert cli("recipes", "validate", str(recipe))[0] == 0
    assert cli("plan", str(recipe))[0] == 0


def test_run_refuses_before_recording_anything(cli, tmp_path: Path) -> None:
    recipe = _missing_data(tmp_path)
    code, _, err = cli("run", str(recipe))
    assert code == 2 and "data.path:" in err and "gone.jsonl: no such file" in err
    code, out, _ = cli("runs", "--json")
    assert code == 0 and json.loads(out) == []


def test_catalog_name_is_checked_too(cli, zd_home: Path) -> None:
    user = zd_home / "recipes"
    user.mkdir(parents=True)
    recipe = demo_copy(user, 2, name='"mine-missing"', path='"/nonexistent/zd/data.jsonl"')
    code, _, err = cli("plan", "mine-missing")
    assert code == 2
    assert err == (f"zerodeck: {recipe}:{_line_of(recipe, '/nonexistent')}: data.path: "
                   f"/nonexistent/zd/data.jsonl: no such file\n")
    code, out, _ = cli("recipes", "list", "--json")  # still listed: a missing file is not a broken recipe
    assert code == 0 and "mine-missing" in out


def test_a_directory_where_the_builtin_trainer_wants_a_file(cli, tmp_path: Path) -> None:
    (tmp_path / "data" / "dir.jsonl").mkdir(parents=True)
    recipe = demo_copy(tmp_path, 0, path='"data/dir.jsonl"')
    code, out, _ = cli("recipes", "validate", str(recipe))
    where = tmp_path / "data" / "dir.jsonl"
    assert code == 2 and out.endswith(f"data.path: {where}: is a directory, not a file\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: permissions are not enforced")
def test_an_unreadable_data_file(cli, tmp_path: Path) -> None:
    recipe = demo_copy(tmp_path, 3)
    data = tmp_path / "data" / "demo-alpaca.jsonl"
    data.chmod(0)
    try:
        code, out, _ = cli("recipes", "validate", str(recipe))
    finally:
        data.chmod(0o644)
    assert code == 2 and out.endswith(f"data.path: {data}: not readable (permission denied)\n")


def test_script_deepspeed_config_and_workdir(cli, tmp_path: Path) -> None:
    script = demo_copy(tmp_path, 3, backend='"deepspeed"', __extra__='script = "train.py"\n')
    code, out, _ = cli("recipes", "validate", str(script))
    assert code == 2 and out == (f"{script}:{_line_of(script, 'train.py')}: launch.script: "
                                 f"{tmp_path / 'train.py'}: no such file\n")
    (tmp_path / "train.py").write_text("")
    assert cli("recipes", "validate", str(script))[0] == 0

    lf = demo_copy(tmp_path, 3, backend='"llamafactory"',
                   __extra__='workdir = "wd"\n[launch.options]\ndeepspeed = "cfg/ds_z3.json"\n')
    code, out, _ = cli("recipes", "validate", str(lf))
    assert code == 2 and out.splitlines() == [
        f"{lf}:{_line_of(lf, 'workdir')}: launch.workdir: {tmp_path / 'wd'}: no such directory",
        f"{lf}:{_line_of(lf, 'ds_z3')}: launch.options.deepspeed: {tmp_path / 'cfg' / 'ds_z3.json'}: no such file",
    ]
    inline = demo_copy(tmp_path, 3, backend='"llamafactory"',
                       __extra__="[launch.options]\ndeepspeed = '{\"zero_optimization\": {\"stage\": 3}}'\n")
    assert cli("recipes", "validate", str(inline))[0] == 0  # inline JSON names no file


def test_names_that_are_not_paths_are_not_files(cli) -> None:
    # The shipped catalog: registry model names and LLaMA-Factory `dataset` names, the demos' data
    # in recipes/data. All valid, all listed.
    code, out, err = cli("recipes", "validate", str(ROOT / "recipes"))
    assert code == 0, out + err
    code, out, _ = cli("recipes", "list", "--json")
    names = {r["name"] for r in json.loads(out)}
    assert {"demo-cpu-zero3", "qwen2.5-32b-lora-z3-s80k", "qwen2.5-7b-lora-z0-s20k"} <= names


def test_a_grid_reports_the_member_whose_file_is_missing(cli, tmp_path: Path) -> None:
    recipe = demo_copy(tmp_path, 3, __extra__='[grid]\n"data.path" = ["data/demo-alpaca.jsonl", "data/b.jsonl"]\n')
    code, out, _ = cli("recipes", "validate", str(recipe))
    line = _line_of(recipe, '"data.path" =')
    assert code == 2 and len(out.splitlines()) == 1
    assert out.startswith(f"{recipe}:{line}: grid.data.path: member ")
    assert out.endswith(f": {tmp_path / 'data' / 'b.jsonl'}: no such file\n")
    # Expanding a grid is text work: it does not need the data to exist yet.
    assert cli("recipes", "expand", str(recipe), "--json")[0] == 0


def test_preflight_catches_a_file_gone_since_loading(tmp_path: Path) -> None:
    recipe_path = demo_copy(tmp_path, 3)
    recipe = load_recipe_file(recipe_path)  # e.g. the TUI's catalog, loaded an hour ago
    shutil.rmtree(tmp_path / "data")
    store = Store.from_environment()
    with pytest.raises(OperationFailed) as exc:
        api.start_run(store, recipe, recipe_path)
    line = _line_of(recipe_path, "demo-alpaca")
    want = f"{recipe_path}:{line}: data.path: {tmp_path / 'data' / 'demo-alpaca.jsonl'}: no such file"
    assert str(exc.value).endswith(want)
    (run,) = store.runs()
    assert (run.status, run.outcome, run.reason) == ("finished", "failed", want)


def test_plan_screen_says_which_file_is_missing(tmp_path: Path) -> None:
    from zerodeck.tui.screens.plan import PlanScreen
    from zerodeck.tui.widgets.plan_bars import PlanBars

    from .tui_support import app

    recipe = demo_copy(tmp_path, 3, name='"tui-missing"', path='"data/gone.jsonl"')
    a = app(None, extra=[tmp_path])

    async def go() -> str:
        async with a.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.2)
            a.push_screen(PlanScreen("tui-missing"))
            for _ in range(100):
                await pilot.pause(0.05)
                if getattr(a.screen.query(PlanBars).first(), "numbers", None) is not None:
                    break
            await pilot.pause(0.2)
            return str(a.screen.query_one("#plan-advice").render())

    text = asyncio.run(go())
    assert f"{recipe}:" in text and "data.path:" in text and "gone.jsonl: no such file (a launch would fail)" in text
