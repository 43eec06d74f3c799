"""Hostile recipes (issue 11): placeholders, member names, env, non-finite numbers, empty arguments.

Each finding is refused by `recipes validate` as `PATH:LINE: field: message` with exit 2, and no
recipe that validates can make rendering fail with anything but BadInput.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zerodeck.core.errors import BadInput
from zerodeck.core.launch.backends import RenderError, render
from zerodeck.core.launch.context import RenderContext
from zerodeck.core.launch.script_backends import placeholders
from zerodeck.core.recipe.grid import expand
from zerodeck.core.recipe.load import RecipeError, load_recipe, load_recipe_file
from zerodeck.core.recipe.model import NAME_RE
from zerodeck.core.recipe.placeholders import PLACEHOLDERS, PlaceholderError, parse

BASE = 'name = "r"\n[model]\nname = "Qwen2.5-7B"\n'


def _write(tmp_path: Path, body: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE + body, encoding="utf-8")
    return path


def _validate(cli: Any, path: Path) -> tuple[int, list[str], str]:
    code, out, err = cli("recipes", "validate", str(path))
    assert "Traceback" not in out + err
    return code, out.splitlines(), err


def _ctx(tmp_path: Path) -> RenderContext:
    return RenderContext(7, tmp_path / "run", tmp_path, 29611, [0, 1], sys.executable)


# -- placeholders ---------------------------------------------------------------------------------

def test_attribute_index_and_format_placeholders_are_validation_errors(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nbackend = "command"\nargv = [\n  "echo",\n  "{run_dir.foo}",\n'
                            '  "{run_dir[x]}",\n  "{python.__class__.__mro__}",\n  "{nproc!r}",\n  "{run_id:>9}",\n'
                            '  "{nope}",\n  "open{",\n  "close}",\n]\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2
    assert lines == [
        f"{path}:8: launch.argv[1]: unknown placeholder '{{run_dir.foo}}'",
        f"{path}:9: launch.argv[2]: unknown placeholder '{{run_dir[x]}}'",
        f"{path}:10: launch.argv[3]: unknown placeholder '{{python.__class__.__mro__}}'",
        f"{path}:11: launch.argv[4]: unknown placeholder '{{nproc!r}}'",
        f"{path}:12: launch.argv[5]: unknown placeholder '{{run_id:>9}}'",
        f"{path}:13: launch.argv[6]: unknown placeholder '{{nope}}'",
        f"{path}:14: launch.argv[7]: unbalanced '{{' in 'open{{' (write '{{{{' for a literal brace)",
        f"{path}:15: launch.argv[8]: unbalanced '}}' in 'close}}' (write '}}}}' for a literal brace)",
    ]


def test_script_backend_args_are_checked_and_grid_axes_too(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nbackend = "deepspeed"\nscript = "t.py"\nargs = ["--x", "{run_dir.foo}"]\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2 and lines == [f"{path}:7: launch.args[1]: unknown placeholder '{{run_dir.foo}}'"]
    grid = _write(tmp_path, '[launch]\nbackend = "command"\nargv = ["echo"]\n'
                            '[grid]\n"launch.argv" = [["echo", "{python.__class__}"]]\n', "g.toml")
    code, lines, _ = _validate(cli, grid)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"{grid}:8: grid.launch.argv: member ")
    assert lines[0].endswith(": launch.argv[1]: unknown placeholder '{python.__class__}'")


def test_placeholders_expand_only_known_plain_names(tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nbackend = "command"\n'
                            'argv = ["echo", "{{run_dir}}", "{{{run_id}}}", "p={master_port}", "{python}"]\n')
    launch = render(load_recipe_file(path), _ctx(tmp_path))
    assert launch.argv == ["echo", "{run_dir}", "{7}", "p=29611", sys.executable]
    # the renderer refuses on its own what validation would have refused (no str.format traversal)
    recipe = load_recipe_file(path)
    for bad in ("{python.__class__.__mro__}", "{run_dir[x]}", "{run_dir.foo}"):
        hostile = recipe.model_copy(update={"launch": recipe.launch.model_copy(update={"argv": ["echo", bad]})})
        with pytest.raises(RenderError, match=r"^launch\.argv\[1\]: unknown placeholder"):
            render(hostile, _ctx(tmp_path))
    with pytest.raises(PlaceholderError):
        parse("{run_dir.__class__}")


def test_validator_and_renderer_share_one_name_set(tmp_path: Path) -> None:
    recipe = load_recipe_file(_write(tmp_path, '[launch]\nbackend = "command"\nargv = ["echo"]\n'))
    assert set(placeholders(recipe, _ctx(tmp_path))) == PLACEHOLDERS


def test_run_refuses_a_bad_placeholder_before_creating_a_run(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nbackend = "command"\nargv = ["echo", "{run_dir.foo}"]\n')
    code, out, err = cli("run", str(path), "--json")
    assert code == 2 and "Traceback" not in out + err
    assert f"{path}:6: launch.argv[1]: unknown placeholder '{{run_dir.foo}}'" in err
    code, out, _ = cli("runs", "--json")
    assert code == 0 and json.loads(out) == []


# -- names and text -------------------------------------------------------------------------------

HOSTILE_GRID = '[grid]\n"data.path" = ["a/../../b", "<script>", "d.jsonl"]\n'


def test_grid_member_names_obey_the_name_rule(tmp_path: Path) -> None:
    recipe = load_recipe_file(_write(tmp_path, HOSTILE_GRID))
    names = [m.name for m in expand(recipe)]
    assert all(NAME_RE.match(n) and len(n) <= 120 for n in names), names
    assert names == [m.name for m in expand(recipe)]  # stable
    assert len(set(names)) == 3
    assert names[2] == "qwen2.5-7b-lora-z0-pathd.jsonl"  # a name that obeys the rule is kept as it was


def test_expand_out_stays_inside_its_directory(cli, tmp_path: Path) -> None:
    grid = _write(tmp_path, HOSTILE_GRID)
    out_dir = tmp_path / "out" / "x" / "y"
    (tmp_path / "b.toml").write_text("keep")
    code, out, err = cli("recipes", "expand", str(grid), "--out", str(out_dir), "--json")
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "out").rglob("*.toml"))
    assert written == sorted(f"{row['name']}.toml" for row in json.loads(out))
    assert all(Path(row["path"]).parent == out_dir for row in json.loads(out))
    assert (tmp_path / "b.toml").read_text() == "keep"
    # a member file that is a symlink out of DIR is refused before anything is written
    victim = tmp_path / "victim.toml"
    victim.write_text("keep")
    first = json.loads(out)[0]["name"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / f"{first}.toml").symlink_to(victim)
    code, out, err = cli("recipes", "expand", str(grid), "--out", str(fresh))
    assert code == 2 and "would be written outside" in err and "Traceback" not in err
    assert victim.read_text() == "keep" and [p.name for p in fresh.iterdir()] == [f"{first}.toml"]


def test_env_keys_and_values(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nenv = { "A=B" = "x" }\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2 and lines == [
        f"{path}:5: launch.env: 'A=B' is not an environment variable name (letters, digits, '_'; not a digit first)"]
    path = _write(tmp_path, '[launch]\nenv = { GOOD_1 = "a\\u0000b" }\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2 and lines == [f"{path}:5: launch.env.GOOD_1: contains a NUL character"]


@pytest.mark.parametrize("body, field, line", [
    ("[train]\nepochs = inf\n", "train.epochs", 5),
    ("[train]\nlr = nan\n", "train.lr", 5),
    ("[hardware]\ncard_gb = -inf\n", "hardware.card_gb", 5),
    ("[method]\ndropout = nan\n", "method.dropout", 5),
])
def test_non_finite_numbers(cli, tmp_path: Path, body: str, field: str, line: int) -> None:
    path = _write(tmp_path, body)
    code, lines, _ = _validate(cli, path)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"{path}:{line}: {field}: Input should be a finite number")


def test_empty_argv_element(cli, tmp_path: Path) -> None:
    path = _write(tmp_path, '[launch]\nbackend = "command"\nargv = [""]\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2 and lines == [
        f"{path}:6: launch.argv[0]: empty argument (an empty program name or argument is never what was meant)"]


def test_nul_in_any_text_field(cli, tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('name = "r"\ndescription = "a\\u0000b"\n[model]\nname = "Qwen2.5-7B"\n')
    code, lines, _ = _validate(cli, path)
    assert code == 2 and lines == [f"{path}:2: description: contains a NUL character"]


# -- property: validation passes => rendering returns or raises BadInput --------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=24) | st.sampled_from(
    ["{run_dir}", "{run_dir.foo}", "{{", "}}", "{", "~nosuchuser/x", "~", "", "a\x00b", "../../x", "{python}",
     "x\ny", "\x1b]0;title\x07", "-", "--flag={output_dir}"])


def _mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` four times in five, so the odd text in one field reaches the renderer past the others."""
    return st.sampled_from([1, 2, 3, 4, 0]).flatmap(lambda n: odd if n == 0 else good)


NAME = _mostly(st.sampled_from(["ok-name", "a.b+c"]), TEXT)
MODEL = _mostly(st.fixed_dictionaries({"name": st.sampled_from(["Qwen2.5-7B", "qwen2.5-0.5b"])}),
                st.fixed_dictionaries({"path": TEXT}))
ENV_KEY = _mostly(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), TEXT)
ARG = _mostly(st.sampled_from(["echo", "{python}", "--x={run_dir}/y", "{{lit}}", "a b"]), TEXT)


@st.composite
def recipes(draw: Any) -> dict[str, Any]:
    backend = draw(st.sampled_from(["command", "deepspeed", "torchrun", "builtin", "llamafactory"]))
    launch: dict[str, Any] = {"backend": backend,
                              "args": draw(st.lists(ARG, max_size=3)),
                              "env": draw(st.dictionaries(ENV_KEY, TEXT, max_size=2))}
    if draw(st.booleans()) or backend == "command":
        launch["argv"] = draw(st.lists(ARG, min_size=1, max_size=3))
    for key in ("script", "workdir", "output_dir"):
        if draw(st.booleans()) or (key == "script" and backend in ("deepspeed", "torchrun")):
            launch[key] = draw(TEXT)
    if backend == "llamafactory":
        launch["options"] = {"cli": draw(st.just(sys.executable) | TEXT)}
    data = draw(st.fixed_dictionaries({}, optional={"path": TEXT, "dataset": TEXT, "dataset_dir": TEXT,
                                                    "template": TEXT}))
    return {"name": draw(NAME), "description": draw(TEXT), "tags": draw(st.lists(TEXT, max_size=2)),
            "model": draw(MODEL), "data": data, "hardware": {"device": "cpu", "cards": 1}, "launch": launch}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=recipes())
def test_no_text_makes_a_valid_recipe_fail_to_render(tmp_path: Path, data: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(data)
    except Exception:  # noqa: BLE001 - some drawn text cannot be written as TOML; validate the dict alone
        text = ""
    try:
        recipe = load_recipe(data, "p.toml", text, tmp_path)
    except RecipeError as exc:
        assert exc.problems and all(str(p).startswith("p.toml:") for p in exc.problems)
        return
    with contextlib.suppress(BadInput):
        render(recipe, _ctx(tmp_path))
