"""`zerodeck cards` and `zerodeck doctor` from the command line (in-process and as a real command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zerodeck.core.telemetry.model import CARD_KEYS, PROCESS_KEYS

from .conftest import FIXTURES
from .import_probe import heavy_modules_loaded

NPU = FIXTURES / "npu-smi"
GPU = FIXTURES / "gpu"


def test_from_npu_smi_json_contract(cli) -> None:
    code, out, err = cli("cards", "--from-npu-smi", str(NPU / "info_910b3_25.2.0_procs_noname.txt"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["source", "cards", "processes"] and data["source"] == "npu-smi"
    assert all(tuple(c) == CARD_KEYS for c in data["cards"]) and len(data["cards"]) == 8
    assert data["cards"][0]["hbm_total_mb"] == 65536 and data["cards"][2]["hbm_used_mb"] == 41052
    assert data["cards"][0]["memory_used_mb"] == 0  # 0 / 0 stays 0
    assert data["processes"] == [{"npu": 2, "chip": 0, "pid": 1333928, "name": None, "memory_mb": 37709}]
    assert all(tuple(p) == PROCESS_KEYS for p in data["processes"])


def test_from_npu_smi_na_is_null(cli) -> None:
    code, out, _ = cli("cards", "--from-npu-smi", str(NPU / "info_a3_ascend910_25.2.0_2npu_procs_fixture.txt"),
                       "--json")
    cards = json.loads(out)["cards"]
    assert code == 0 and cards[1]["power_w"] is None and cards[1]["chip"] == 1


def test_from_nvidia_smi_each_format(cli) -> None:
    for name in ("nvidia-smi_query.csv", "nvidia-smi_q.xml", "nvidia-smi_plain.txt"):
        code, out, err = cli("cards", "--from-nvidia-smi", str(GPU / name), "--json")
        assert code == 0, err
        data = json.loads(out)
        card = data["cards"][0]
        assert data["source"] == "nvidia" and (card["npu"], card["chip"], card["hbm_total_mb"]) == (0, 0, 143771)
        assert card["aicore_pct"] == 0


def test_bad_files_are_one_line_exit_2(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4)
    cases = [(empty, "npu-smi: empty output"), (junk, "no card table"),
             (NPU / "npusmi_err_dcmi_-8005.txt", "ret -8005"), (tmp_path / "missing.txt", "No such file")]
    for path, needle in cases:
        code, out, err = cli("cards", "--from-npu-smi", str(path))
        assert code == 2 and out == "" and needle in err and str(path) in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = cli("cards", "--from-nvidia-smi", str(empty), "--json")
    assert code == 2 and "empty output" in err


def test_table_view(cli) -> None:
    code, out, _ = cli("cards", "--from-npu-smi", str(NPU / "info_910a_24.1.rc2_procs_xxx_hwdoc.txt"))
    assert code == 0 and "Warning" in out and "hlt_host_devmm_" in out and "HBM_TOTAL_MB" in out


def test_cpu_source_once_sees_a_rank(cli, zd_bin: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"],
                             env={**os.environ, "RANK": "7"})
    try:
        proc = subprocess.run([zd_bin, "cards", "--source", "cpu", "--json"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        mine = [c for c in data["cards"] if c["npu"] == 7]
        assert data["source"] == "cpu" and mine and mine[0]["memory_used_mb"] > 0
        assert mine[0]["memory_total_mb"] > mine[0]["memory_used_mb"]
        proc = subprocess.run([zd_bin, "cards", "--once", "--source", "cpu"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and "host: cpu" in proc.stdout
    finally:
        child.kill()
        child.wait()


def test_missing_hardware_source_is_a_clear_state(cli) -> None:
    code, out, err = cli("cards", "--source", "npu-smi", "--json")
    if code == 0:  # a machine with npu-smi
        return
    assert code == 1 and json.loads(out)["cards"] == [] and "npu-smi:" in err


def test_doctor_json(cli) -> None:
    code, out, _ = cli("doctor", "--json")
    data = json.loads(out)
    assert code == 0 and data["sources"]["cpu"] == "available"
    assert set(data["packages"]) >= {"torch", "torch_npu", "deepspeed"}
    code, out, _ = cli("doctor")
    assert code == 0 and "telemetry sources:" in out and "deepspeed" in out


def test_doctor_does_not_import_torch(zd_bin: str) -> None:
    code = ("import contextlib, io\nfrom zerodeck.core.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['doctor', '--json'])\n")
    assert heavy_modules_loaded(code) == []


def test_live_view_redraws_in_place_until_ctrl_c(zd_bin: str) -> None:
    import pty
    import select
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the real command on a terminal
        os.execv(zd_bin, [zd_bin, "cards", "--source", "cpu", "--interval", "0.3"])
    buf = b""
    deadline = time.monotonic() + 20
    while buf.count(b"\x1b[H\x1b[2J") < 3 and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    os.kill(pid, signal.SIGINT)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert buf.count(b"\x1b[H\x1b[2J") >= 3 and b"Ctrl-C to quit" in buf and b"host: cpu" in buf
    assert os.waitstatus_to_exitcode(status) == 0


def test_doctor_reads_ascend_version_files(tmp_path: Path) -> None:
    from zerodeck.core.cli.doctor_cmd import ascend_versions

    (tmp_path / "driver").mkdir()
    (tmp_path / "driver" / "version.info").write_text("Version=25.2.0\nascendhal_version=7.35.23\n")
    info = tmp_path / "ascend-toolkit" / "latest" / "aarch64-linux" / "ascend_toolkit_install.info"
    info.parent.mkdir(parents=True)
    info.write_text("package_name=Ascend-cann-toolkit\nversion=8.1.RC1\n")
    assert ascend_versions(tmp_path) == {"driver": "25.2.0", "cann": "8.1.RC1"}
    assert ascend_versions(tmp_path / "absent") == {"driver": None, "cann": None}
