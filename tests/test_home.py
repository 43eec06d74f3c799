"""Machine-local places: a data directory that is not a directory, and the DeepSpeed op cache key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from zerodeck.core.launch.environment import extensions_dir, ops_cache_dir


@pytest.mark.parametrize("argv", [["runs"], ["recipes", "list"], ["plan", "demo-cpu-zero3"], []])
def test_home_that_is_a_file_is_one_line_exit_2(cli, tmp_path: Path, monkeypatch, argv: list[str]) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a directory\n")
    monkeypatch.setenv("ZERODECK_HOME", str(home))
    code, out, err = cli(*argv)  # [] is the TUI entry: it must refuse before any screen starts
    assert (code, out) == (2, "")
    assert err == f"zerodeck: ZERODECK_HOME={home} is not a directory\n"
    assert home.read_text() == "not a directory\n"


def test_home_under_a_file_names_the_file(cli, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("ZERODECK_HOME", str(blocker / "zd"))
    code, _, err = cli("runs")
    assert code == 2
    assert err == f"zerodeck: ZERODECK_HOME={blocker / 'zd'}: {blocker} is not a directory\n"


def test_xdg_home_that_is_a_file_names_the_path(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ZERODECK_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "zerodeck").write_text("")
    code, _, err = cli("runs")
    assert (code, err) == (2, f"zerodeck: {tmp_path / 'zerodeck'} is not a directory\n")


@pytest.mark.sqlite_only
def test_missing_home_is_still_created(cli, zd_home: Path) -> None:
    assert not zd_home.exists()
    code, _, _ = cli("runs")
    assert code == 0 and zd_home.is_dir()


def test_tui_entry_with_a_file_home_in_a_real_process(zd_bin: str, tmp_path: Path) -> None:
    home = tmp_path / "f"
    home.write_text("")
    proc = subprocess.run([zd_bin], capture_output=True, text=True, timeout=60,
                          env={"ZERODECK_HOME": str(home), "PATH": str(Path(sys.executable).parent), "TERM": "xterm"})
    assert proc.returncode == 2
    assert proc.stderr == f"zerodeck: ZERODECK_HOME={home} is not a directory\n" and "Errno" not in proc.stdout


def test_op_cache_is_keyed_by_the_environment(tmp_path: Path) -> None:
    def key(prefix: str, torch: str = "2.5.1") -> Path:
        return ops_cache_dir(python="py311", torch=torch, deepspeed="0.16.4",
                             install_paths=[prefix, f"{prefix}/lib/python3.11/site-packages"], cache_root=tmp_path)

    a, b = key("/opt/venv-a"), key("/home/u/venv-b")
    assert a != b  # same versions, two installs: two caches, so neither rebuilds the other's ops
    assert a == key("/opt/venv-a")  # stable: the same install finds its ops again
    assert key("/opt/venv-a", torch="2.6.0") != a
    assert a.parent == tmp_path / "zerodeck" / "torch_extensions"
    assert a.name.startswith("py311-torch2.5.1-ds0.16.4-")  # still readable by people


def test_this_environment_gets_its_own_op_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here = extensions_dir()
    assert here.parent == tmp_path / "zerodeck" / "torch_extensions"
    assert here == extensions_dir()
    monkeypatch.setattr(sys, "prefix", "/somewhere/else")
    assert extensions_dir() != here
