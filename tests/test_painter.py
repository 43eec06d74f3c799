"""The chart painter: a child process that imports matplotlib while the command reads the store. It
must draw exactly what drawing in the command's own process draws, in the command's language, never
pick up a `zerodeck` package from the working directory, and never outlive a command that ends
without a chart (bad input, no runs, Ctrl-C)."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from zerodeck.core.export.chart_data import Curve
from zerodeck.core.export.painter import ChartFailed, Painter
from zerodeck.core.i18n import set_language

pytest.importorskip("matplotlib")

CURVES = [Curve("#1 千问-7b", [(float(s), 2.0 - s / 200) for s in range(1, 101)], [(50.0, 1.8), (100.0, 1.6)]),
          Curve("#2 qwen-14b", [(float(s), 2.2 - s / 150) for s in range(1, 101)])]


def _painters() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any("zerodeck.core.export.painter" in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def _inline(chart: str, data: object, fmt: str, **options: object) -> bytes:
    painter = Painter.__new__(Painter)
    painter.fmt, painter._proc = fmt, None  # what a machine that cannot start a process gets
    return painter.draw(chart, data, **options)


def test_the_child_draws_what_this_process_draws() -> None:
    # SVG and PDF carry no date: the same chart is the same bytes, whichever process drew it.
    for fmt in ("svg", "pdf"):
        with Painter(fmt) as painter:
            there = painter.draw("curves_chart", CURVES, title="Loss", ylabel="loss")
        assert there == _inline("curves_chart", CURVES, fmt, title="Loss", ylabel="loss")
    with Painter("png") as painter:
        png = painter.draw("peaks_chart", [{"id": 1, "name": "a", "peak_max_gib": 30.0, "capacity_gib": 64.0}])
    assert png.startswith(b"\x89PNG")


def test_the_child_speaks_the_commands_language() -> None:
    try:
        set_language("zh")
        with Painter("svg") as painter:
            svg = painter.draw("curves_chart", CURVES, title="损失", ylabel="loss").decode("utf-8")
    finally:
        set_language("en")
    assert ">步数<" in svg  # the x axis, "step", in Chinese
    assert ">step<" not in svg


def test_a_zerodeck_package_in_the_working_directory_is_not_imported(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / "zerodeck"
    bogus.mkdir()
    (bogus / "__init__.py").write_text("raise SystemExit('the working directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    with Painter("svg") as painter:
        assert painter.draw("curves_chart", CURVES[:1], title="t", ylabel="y").startswith(b"<?xml")


def test_leaving_without_a_chart_stops_the_child() -> None:
    painter = Painter("svg")
    assert painter._proc is not None
    pid = painter._proc.pid
    with painter:
        pass
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_dead_child_is_one_error_not_a_hang() -> None:
    with Painter("svg") as painter:
        assert painter._proc is not None
        painter._proc.kill()
        painter._proc.wait()
        with pytest.raises(ChartFailed, match="drew nothing"):
            painter.draw("curves_chart", CURVES, title="t", ylabel="y")
    with pytest.raises(ValueError, match="no chart named"):
        Painter.__new__(Painter).draw("__import__", [])


def test_the_child_warms_up_only_while_its_job_is_not_there_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.export import charts
    from zerodeck.core.export import painter as child

    drawn: list[int] = []  # curves per chart the child drew: 1 is its throwaway chart
    real = charts.curves_chart
    monkeypatch.setattr(charts, "curves_chart", lambda data, *a, **k: (drawn.append(len(data)), real(data, *a, **k))[1])
    job = pickle.dumps(("curves_chart", CURVES, {"title": "t", "ylabel": "y"}, "en"))

    def run_child(waiting: bool) -> bytes:
        """The child's stdout; its job on stdin before it starts (`waiting`), else once it has
        drawn something (its throwaway chart: with no warm-up the job never comes, and the
        assertions below fail after 30 s)."""
        r, w = os.pipe()
        out = io.BytesIO()

        def feed() -> None:
            deadline = time.monotonic() + 30
            while not waiting and not drawn and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(w, job)
            os.close(w)

        feeder = threading.Thread(target=feed)
        if waiting:
            feed()
        else:
            feeder.start()
        monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=os.fdopen(r, "rb")))
        monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=out))
        try:
            assert child.main("svg") == 0
        finally:
            if feeder.ident is not None:
                feeder.join()
            sys.stdin.buffer.close()
        return out.getvalue()

    image, said = pickle.loads(run_child(waiting=True))
    assert drawn == [len(CURVES)] and image.startswith(b"<?xml") and said == []
    drawn.clear()
    image, _ = pickle.loads(run_child(waiting=False))
    assert drawn == [1, len(CURVES)] and image.startswith(b"<?xml")


@pytest.fixture
def zd_home(tmp_path: Path) -> Path:
    return tmp_path


def _one_run(home: Path, steps: int) -> tuple[Any, int]:
    """A store in `home` holding one finished run with `steps - 1` loss points."""
    from zerodeck.store.api import Store

    os.environ["ZERODECK_HOME"] = str(home)
    try:
        store = Store.from_environment()
        store.save_snapshot(hash="h", name="r", toml="", source_path=None)
        rid = store.add_run(name="r", recipe_hash="h", status="finished", outcome="succeeded")
        store.upsert_metrics(rid, [{"step": s, "loss": 1.0 / s} for s in range(1, steps)])
    finally:
        del os.environ["ZERODECK_HOME"]
    return store, rid


def _zd(home: Path, *argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ZERODECK_HOME": str(home)}
    env.pop("ZERODECK_DB", None)
    return subprocess.Popen([str(Path(sys.executable).with_name("zerodeck")), *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_command_that_ends_early_leaves_no_painter(zd_home: Path) -> None:
    before = {p.pid for p in _painters()}
    proc = _zd(zd_home, "chart", "loss", "--all", "-o", str(zd_home / "x.png"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "no runs recorded yet" in err and "Traceback" not in err
    time.sleep(0.2)
    assert {p.pid for p in _painters()} - before == set()


def test_ctrl_c_stops_command_and_painter_in_one_line(zd_home: Path) -> None:
    _, rid = _one_run(zd_home, steps=50)
    before = {p.pid for p in _painters()}
    proc = _zd(zd_home, "chart", "loss", str(rid), "-o", str(zd_home / "x.png"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ({p.pid for p in _painters()} - before):
        time.sleep(0.02)
    # The whole process group, as a terminal's Ctrl-C does.
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    time.sleep(0.2)
    assert {p.pid for p in _painters()} - before == set()


LEAVE = """
import atexit, sys, threading, time
from zerodeck.core.cli.context import exit_quickly, leave

class Finalized:
    def __del__(self, _open=open, path=sys.argv[1] + ".finalized"):  # builtins may be gone by then
        _open(path, "w").close()

KEEP = Finalized()
atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").close())
print("x" * 100000, end="")  # more than a pipe holds: stays in the buffer until flushed
if sys.argv[2] == "thread":
    threading.Thread(target=time.sleep, args=(0.5,)).start()
if sys.argv[3] == "opt-in":
    exit_quickly()
leave(3)
"""


@pytest.mark.parametrize(("thread", "opt_in", "finalized"), [("none", "opt-in", False), ("thread", "opt-in", True),
                                                              ("none", "no", True)])
def test_a_command_that_opted_in_leaves_without_finalizing(tmp_path: Path, thread: str, opt_in: str,
                                                           finalized: bool) -> None:
    """The quick exit still flushes the output and runs the exit handlers; it skips the interpreter's
    teardown only for a command that opted in, and never while another thread is working."""
    marker = tmp_path / "m"
    proc = subprocess.run([sys.executable, "-c", LEAVE, str(marker), thread, opt_in], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3 and proc.stdout == "x" * 100000, proc.stderr
    assert (tmp_path / "m.atexit").exists()
    assert (tmp_path / "m.finalized").exists() is finalized


def test_a_chart_on_stdout_arrives_whole_and_the_store_stays_writable(zd_home: Path) -> None:
    import xml.etree.ElementTree as ET

    store, rid = _one_run(zd_home, steps=2000)
    proc = _zd(zd_home, "chart", "loss", str(rid))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert ET.fromstring(out).tag.endswith("svg") and len(out) > 10000
    proc = _zd(zd_home, "compare", "--all", "--format", "csv")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.count("\n") >= 2, err
    store.upsert_metrics(rid, [{"step": 2000, "loss": 0.1}])  # the exits left no lock behind
    assert [m.step for m in store.metrics(rid)][-1] == 2000
