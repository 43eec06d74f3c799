"""Fake `npu-smi` executables for the hung-telemetry tests and the benchmark: a shell wrapper whose
child hangs (what a wedged driver does to the real tool behind a vendor wrapper), and one that
replays a real captured table. Shared by tests/test_hung_telemetry.py and bench/bench_telemetry.py."""

from __future__ import annotations

import stat
from pathlib import Path

NPU = Path(__file__).resolve().parent / "fixtures" / "npu-smi"
TABLE = NPU / "info_910b3_25.2.0_procs_noname.txt"
MAP = NPU / "map_910a_24.1.rc2_hwdoc.txt"


def _write(bindir: Path, body: str) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / "npu-smi"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def hanging(bindir: Path, pidfile: Path) -> Path:
    """A wrapper that starts `sleep 1000` as its child, writes the child's pid, and waits for it
    (not `exec`: the hung process is a grandchild of whoever runs the wrapper)."""
    return _write(bindir, f"sleep 1000 &\necho $! >> '{pidfile}'\nwait")


def replaying(bindir: Path) -> Path:
    """`npu-smi info` prints the real 8-card 910B3 capture; `npu-smi info -m` a real mapping table."""
    return _write(bindir, f'if [ "$2" = "-m" ]; then cat \'{MAP}\'; else cat \'{TABLE}\'; fi')


def pids_in(pidfile: Path) -> list[int]:
    try:
        return [int(x) for x in pidfile.read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    """Running, not merely a zombie: in a container whose pid 1 does not reap, a killed orphan stays
    a zombie (dead, holding nothing) until the container ends."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
