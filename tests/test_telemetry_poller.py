"""The poller with a scripted npu-smi (real captured output, a fake clock), and the npu-smi source
against real misbehaving executables: absent, hanging, failing, printing a DCMI error."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

from zerodeck.core.telemetry.model import Snapshot
from zerodeck.core.telemetry.poller import Poller
from zerodeck.core.telemetry.sources import NpuSmiSource

from .conftest import FIXTURES

NPU = FIXTURES / "npu-smi"
TABLE = (NPU / "info_910b3_25.2.0_procs_noname.txt").read_text()
DCMI = (NPU / "npusmi_err_dcmi_-8020.txt").read_text()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """npu-smi as a runner: each call takes `cost` seconds of the fake clock and gives the next item."""

    def __init__(self, clock: Clock, items: list[tuple[float, object]]) -> None:
        self.clock, self.items, self.calls = clock, items, 0

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        if argv[-1] == "-m":
            return 0, "", ""
        cost, item = self.items[min(self.calls, len(self.items) - 1)]
        self.calls += 1
        self.clock.now += min(cost, timeout)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, tuple):
            return item  # type: ignore[return-value]
        return 0, str(item), ""


def test_scripted_history_stale_na_zero_and_adaptive_interval() -> None:
    clock = Clock()
    runner = Scripted(clock, [(0.2, TABLE), (3.0, TABLE), (10.0, TimeoutError(10.0)), (0.1, (255, "", DCMI)),
                              (0.1, "\x00\x01garbage"), (0.1, TABLE)])
    posted: list[Snapshot] = []
    poller = Poller(NpuSmiSource(runner=runner), posted.append, interval=1.0, timeout=10.0, with_host=False,
                    clock=clock)
    first = poller.poll_once()
    assert first.error is None and first.cards[2].hbm_used_mb == 41052 and first.cards[0].memory_used_mb == 0
    assert poller.interval == 1.0  # a fast source keeps the 1 s target
    poller.poll_once()
    assert poller.interval == 6.0  # 3 s read -> wait twice as long
    timed_out = poller.poll_once()
    assert timed_out.error == "npu-smi: timed out after 10 s" and timed_out.stale and timed_out.timed_out
    assert timed_out.cards[2].hbm_used_mb == 41052  # last good numbers, marked stale
    assert poller.interval == 1.0  # a time-out is backed off, not stretched into the host figures' rate
    clock.now += 9.0
    resting = poller.poll_once()  # backed off for 10 s: the source is not asked
    assert runner.calls == 3 and resting.stale and resting.error == "npu-smi: timed out after 10 s; next try in 1 s"
    clock.now += 1.0
    dcmi = poller.poll_once()
    assert dcmi.stale and dcmi.error is not None and "-8020" in dcmi.error
    garbage = poller.poll_once()
    assert garbage.stale and "no card table" in (garbage.error or "")
    fresh = poller.poll_once()
    assert not fresh.stale and fresh.error is None and fresh.cards[0].power_w == 97.9
    assert len(posted) == 7 and runner.calls == 6


def test_no_overlap_and_next_wait() -> None:
    clock = Clock()
    poller = Poller(NpuSmiSource(runner=Scripted(clock, [(0.4, TABLE)])), lambda s: None, with_host=False,
                    clock=clock)
    started = clock()
    poller.poll_once()
    assert abs(poller.next_wait(started) - 0.6) < 1e-9


def test_thread_never_runs_two_reads_at_once() -> None:
    active, most = [0], [0]
    lock = threading.Lock()

    def slow(argv: list[str], timeout: float) -> tuple[int, str, str]:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return 0, TABLE, ""

    got: list[Snapshot] = []
    poller = Poller(NpuSmiSource(runner=slow), got.append, interval=0.01, with_host=False)
    poller.start()
    extra = [threading.Thread(target=poller.poll_once) for _ in range(3)]
    for t in extra:
        t.start()
    time.sleep(0.4)
    poller.stop()
    for t in extra:
        t.join()
    assert most[0] == 1 and len(got) >= 4


def test_callback_and_source_bugs_do_not_stop_polling() -> None:
    class Broken:
        name = "npu-smi"

        def read(self, timeout: float = 10.0) -> Snapshot:
            raise RuntimeError("boom")

    def bad_callback(s: Snapshot) -> None:
        raise ValueError("consumer bug")

    poller = Poller(Broken(), bad_callback, with_host=False)
    snap = poller.poll_once()
    assert snap.error == "npu-smi: RuntimeError: boom"
    assert poller.poll_once().error == "npu-smi: RuntimeError: boom"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "npu-smi"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_real_executables_misbehaving(tmp_path: Path) -> None:
    assert NpuSmiSource(binary=str(tmp_path / "absent")).read().error == "npu-smi: not found on PATH"
    hang = NpuSmiSource(binary=_script(tmp_path, "sleep 30"))
    t0 = time.monotonic()
    assert hang.read(timeout=0.3).error == "npu-smi: timed out after 0.3 s"
    assert time.monotonic() - t0 < 5
    dcmi_file = tmp_path / "dcmi.txt"
    dcmi_file.write_text(DCMI)
    failing = NpuSmiSource(binary=_script(tmp_path, f"cat {dcmi_file}; exit 255"))
    assert "dcmi initialisation failed (ret -8020)" in (failing.read().error or "")
    odd = NpuSmiSource(binary=_script(tmp_path, "echo 'Segmentation fault' >&2; exit 139"))
    assert odd.read().error == "npu-smi: exited 139: Segmentation fault"
    binary = NpuSmiSource(binary=_script(tmp_path, "head -c 300 /bin/sh"))
    assert "no card table" in (binary.read().error or "")
    table_file = tmp_path / "table.txt"
    table_file.write_text(TABLE)
    good = NpuSmiSource(binary=_script(tmp_path, f"cat {table_file}"))
    snap = good.read()
    assert snap.error is None and len(snap.cards) == 8 and snap.versions == {"npu-smi": "25.2.0", "driver": "25.2.0"}
