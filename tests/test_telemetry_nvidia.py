"""The saved H200 outputs (plain, XML, CSV) parse to the same card; the live fallback runs the CSV
query through an injected runner replaying that capture."""

from __future__ import annotations

import pytest
from zerodeck.core.telemetry import nvidia_parse as nv
from zerodeck.core.telemetry.sources import NvidiaSource

from .conftest import FIXTURES

GPU = FIXTURES / "gpu"


@pytest.mark.parametrize(("name", "power"), [("nvidia-smi_plain.txt", 118), ("nvidia-smi_q.xml", 78.69),
                                             ("nvidia-smi_query.csv", 112.69)])
def test_h200_outputs(name: str, power: float) -> None:
    cards, procs, error = nv.parse_any((GPU / name).read_text())
    assert error is None and procs == []
    (card,) = cards
    assert (card.npu, card.chip, card.name, card.hbm_used_mb, card.hbm_total_mb, card.aicore_pct, card.temp_c) == \
        (0, 0, "NVIDIA H200", 0, 143771, 0, 35)
    assert card.power_w == power
    assert card.memory_used_mb is None  # framebuffer memory is hbm_* by contract


def test_plain_process_rows() -> None:
    text = (GPU / "nvidia-smi_plain.txt").read_text().replace(
        "|  No running processes found                                                             |",
        "|    0   N/A  N/A         4242      C   python3                                 30720MiB |")
    _, procs, _ = nv.parse_plain(text)
    assert [(p.npu, p.pid, p.name, p.memory_mb) for p in procs] == [(0, 4242, "python3", 30720)]


def test_xml_process_rows() -> None:
    text = (GPU / "nvidia-smi_q.xml").read_text().replace(
        "<processes>\n\t\t</processes>",
        "<processes><process_info><pid>77</pid><process_name>python</process_name>"
        "<used_memory>512 MiB</used_memory></process_info></processes>")
    _, procs, _ = nv.parse_xml(text)
    assert [(p.pid, p.name, p.memory_mb) for p in procs] == [(77, "python", 512)]


def test_bad_inputs() -> None:
    assert nv.parse_any("")[2] == "nvidia-smi: empty output"
    assert "XML" in (nv.parse_any("<?xml version='1.0'?><nvidia_smi_log>")[2] or "")
    assert nv.parse_any("garbage, more garbage\n1,2")[2] is not None
    cards, _ = nv.parse_csv("index, memory.used [MiB], memory.total [MiB]\n0, [N/A], 80000 MiB\n")
    assert cards[0].hbm_used_mb is None and cards[0].hbm_total_mb == 80000


def test_smi_fallback_through_runner() -> None:
    csv = "index, name, pci.bus_id, memory.used [MiB], memory.total [MiB], utilization.gpu [%], " \
          "temperature.gpu, power.draw [W]\n0, NVIDIA H200, 00000000:00:06.0, 1024, 143771, 37, 40, 300.5\n"
    apps = "gpu_bus_id, pid, process_name, used_memory [MiB]\n00000000:00:06.0, 999, python, 1000\n"
    calls = []

    def runner(argv: list[str], timeout: float) -> tuple[int, str, str]:
        calls.append(argv)
        return 0, (apps if "--query-compute-apps" in argv[1] else csv), ""

    snap = NvidiaSource(runner=runner, use_nvml=False).read()
    assert snap.error is None and snap.cards[0].hbm_used_mb == 1024 and snap.cards[0].aicore_pct == 37
    assert [(p.npu, p.pid, p.memory_mb) for p in snap.processes] == [(0, 999, 1000)]
    assert all(a[0] == "nvidia-smi" for a in calls)


def test_nvidia_smi_missing_is_a_state() -> None:
    def runner(argv: list[str], timeout: float) -> tuple[int, str, str]:
        raise FileNotFoundError(argv[0])

    snap = NvidiaSource(runner=runner, use_nvml=False).read()
    assert snap.error == "nvidia-smi: not found on PATH" and snap.cards == []


def test_nvml_path_with_the_h200_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NVML code path, with a stand-in module that answers what the captured H200 showed
    (143771 MiB total, 0 used, 0 %, 35 C, 112.69 W); fan/power unsupported calls become None."""
    import sys
    import types

    mib = 1024 * 1024
    fake = types.ModuleType("pynvml")

    class NotSupported(Exception):
        pass

    def unsupported(*a: object) -> None:
        raise NotSupported("Not Supported")

    fake.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 1  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: ("h", i)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetName = lambda h: "NVIDIA H200"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        used=0, total=143771 * mib, free=143156 * mib)
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=0, memory=0)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetTemperature = lambda h, kind: 35  # type: ignore[attr-defined]
    fake.nvmlDeviceGetPowerUsage = unsupported  # type: ignore[attr-defined]
    fake.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"00000000:00:06.0")  # type: ignore[attr-defined]
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: [  # type: ignore[attr-defined]
        types.SimpleNamespace(pid=4242, usedGpuMemory=30720 * mib), types.SimpleNamespace(pid=4243, usedGpuMemory=None)]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    source = NvidiaSource()
    assert source.backend == "nvml"
    snap = source.read()
    card = snap.cards[0]
    assert snap.error is None
    assert (card.name, card.hbm_used_mb, card.hbm_total_mb, card.aicore_pct, card.temp_c, card.power_w, card.bus_id) \
        == ("NVIDIA H200", 0, 143771, 0, 35, None, "00000000:00:06.0")
    assert [(p.pid, p.memory_mb) for p in snap.processes] == [(4242, 30720), (4243, None)]
