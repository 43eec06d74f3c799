"""`zerodeck run RECIPE --dry-run [--json]`: what would be launched, for every backend, with secrets
masked, and nothing started or recorded (no database, no run directory)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from zerodeck.core.launch.backends import BACKENDS
from zerodeck.core.launch.dryrun import mask_argv, mask_text

from .launch_helpers import demo_copy
from .test_swift_render import make_swift

KEYS = ["name", "recipe_path", "backend", "argv", "env", "cwd", "ranks", "run_dir", "files", "problem"]


@pytest.fixture
def clis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Stand-in `swift` and `llamafactory-cli` executables (rendering only checks they exist), and this
    venv's `deepspeed` / `torchrun` on PATH, where the preflight looks for them."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    swift = make_swift(tmp_path / "swiftenv", "4.6.0")
    lf = tmp_path / "lfenv" / "bin" / "llamafactory-cli"
    lf.parent.mkdir(parents=True)
    lf.write_text("#!/bin/sh\nexit 0\n")
    lf.chmod(0o755)
    monkeypatch.setenv("ZERODECK_SWIFT_CLI", str(swift))
    monkeypatch.setenv("ZERODECK_LLAMAFACTORY_CLI", str(lf))
    return {"swift": swift, "llamafactory": lf}


def recipe_for(tmp_path: Path, backend: str) -> Path:
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    launch = {
        "builtin": 'backend = "builtin"\n',
        "deepspeed": f'backend = "deepspeed"\nscript = "{script}"\nargs = ["--deepspeed", "{{ds_config}}"]\n',
        "torchrun": f'backend = "torchrun"\nscript = "{script}"\n',
        "command": f'backend = "command"\nargv = ["{sys.executable}", "{script}", "{{run_dir}}"]\n',
        "llamafactory": 'backend = "llamafactory"\n',
        "swift": 'backend = "swift"\n',
    }[backend]
    path = demo_copy(tmp_path, 2)
    text = path.read_text().replace('backend = "builtin"\n', launch)
    if backend in ("llamafactory", "swift"):  # they train a hub model, not zerodeck's own tiny one
        text = text.replace('name = "zerodeck-tiny"', 'name = "Qwen2.5-0.5B"')
    text += '\n[launch.env]\nHF_TOKEN = "hf_secret_value"\n'
    path.write_text(text)
    return path


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_shows_its_launch_and_records_nothing(tmp_path: Path, cli, clis, zd_home: Path,
                                                           backend: str) -> None:
    path = recipe_for(tmp_path, backend)
    code, out, err = cli("run", str(path), "--dry-run", "--json")
    assert code == 0, err
    [shown] = json.loads(out)
    assert list(shown) == KEYS
    assert shown["backend"] == backend and shown["ranks"] == 2 and shown["problem"] is None
    assert shown["argv"] and shown["env"]["MASTER_PORT"].isdigit()
    assert shown["env"]["HF_TOKEN"] == "***" and "hf_secret_value" not in out
    assert "ds_config.json" in shown["files"]
    assert json.loads(shown["files"]["ds_config.json"])["zero_optimization"]["stage"] == 2
    if backend in clis:
        assert shown["argv"][0] == str(clis[backend])
    # Nothing was started or recorded: no database, no run directory.
    assert not zd_home.exists() or not any(zd_home.rglob("*.db")), list(zd_home.rglob("*"))
    assert not (zd_home / "runs").exists()


def test_human_output_and_a_launch_that_would_fail(tmp_path: Path, cli, clis) -> None:
    path = recipe_for(tmp_path, "swift")
    code, out, err = cli("run", str(path), "--dry-run")
    assert code == 0, err
    assert "HF_TOKEN='***'" in out or "HF_TOKEN=***" in out
    argv_line = next(line for line in out.splitlines() if line.startswith(str(clis["swift"])))
    assert " sft --model " in argv_line and "--deepspeed " in argv_line
    assert "# --- ds_config.json ---" in out

    bad = recipe_for(tmp_path, "command")
    bad.write_text(bad.read_text().replace(f'argv = ["{sys.executable}"', 'argv = ["no-such-program-zd"'))
    code, out, err = cli("run", str(bad), "--dry-run", "--json")
    assert code == 1
    assert json.loads(out)[0]["problem"] == "no-such-program-zd: not found on PATH"
    assert "would fail: no-such-program-zd: not found on PATH" in err


def test_a_recipe_that_cannot_render_is_bad_input(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZERODECK_SWIFT_CLI", str(tmp_path / "missing" / "swift"))
    code, out, err = cli("run", str(recipe_for(tmp_path, "swift")), "--dry-run")
    assert code == 2 and out == ""
    assert err.startswith("zerodeck: swift not found: ZERODECK_SWIFT_CLI") and "Traceback" not in err


def test_grid_members_are_each_shown(tmp_path: Path, cli) -> None:
    path = demo_copy(tmp_path, 2, __extra__='\n[grid]\n"train.micro_batch" = [1, 2]\n')
    code, out, err = cli("run", str(path), "--dry-run", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [json.loads(s["files"]["job.json"])["micro_batch"] for s in shown] == [1, 2]


def test_secret_masking_in_argv_and_files() -> None:
    assert mask_argv(["swift", "sft", "--hub_token", "abc", "--max_new_tokens", "5", "--api-key=xyz", "--tokenizer",
                      "t"]) == ["swift", "sft", "--hub_token", "***", "--max_new_tokens", "5", "--api-key=***",
                                "--tokenizer", "t"]
    text = 'model: "m"\nhub_token: "abc"\n  "api_key": "x",\ntokenized_path: "p"\n'
    assert mask_text(text) == 'model: "m"\nhub_token: ***\n  "api_key": ***\ntokenized_path: "p"\n'
