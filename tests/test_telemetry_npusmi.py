"""Every `npu-smi info` table of the corpus parses to the exact numbers it prints.

The EXPECTED rows were checked by eye against each fixture (see tests/fixtures/npu-smi/PROVENANCE.md);
card tuples are (npu, chip, logical_id, name, health, power_w, temp_c, aicore_pct, memory_used_mb,
memory_total_mb, hbm_used_mb, hbm_total_mb, bus_id); process tuples (npu, chip, pid, name, memory_mb).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from zerodeck.core.telemetry import npusmi_parse as nps

from .conftest import FIXTURES

NPU = FIXTURES / "npu-smi"

EXPECTED: dict[str, tuple] = {
    "info_310_20.2.0_4chips_hwdoc.txt": (
        {"npu-smi": "20.2.0", "driver": "20.2.0"},
        [
            (215, 0, 0, "310", "OK", 12.8, 56, 0, 2703, 8192, None, None, "0000:DA:00.0"),
            (215, 1, 1, "310", "OK", 12.8, 57, 0, 2703, 8192, None, None, "0000:DC:00.0"),
            (215, 2, 2, "310", "OK", 12.8, 57, 0, 2703, 8192, None, None, "0000:DD:00.0"),
            (215, 3, 3, "310", "OK", 12.8, 55, 0, 2703, 8192, None, None, "0000:DB:00.0"),
        ],
        [],
    ),
    "info_310_21.0.4_4chips_hwdoc.txt": (
        {"npu-smi": "21.0.4", "driver": "21.0.4.B030"},
        [
            (6, 0, 3, "310", "OK", 12.8, 73, 0, 2703, 8192, None, None, "0000:89:00.0"),
            (6, 1, 4, "310", "OK", 12.8, 74, 0, 2867, 8192, None, None, "0000:8A:00.0"),
            (6, 2, 5, "310", "OK", 12.8, 70, 0, 2867, 8192, None, None, "0000:8B:00.0"),
            (6, 3, 6, "310", "OK", 12.8, 65, 0, 2867, 8192, None, None, "0000:8C:00.0"),
        ],
        [],
    ),
    "info_310_23.0.0_noprocs.txt": (
        {"npu-smi": "23.0.0", "driver": "23.0.0"},
        [
            (0, 0, 0, "310", "OK", 12.8, 61, 0, 577, 7759, None, None, "0000:01:00.0"),
        ],
        [],
    ),
    "info_310b1_23.0.rc3_hwdoc.txt": (
        {"npu-smi": "23.0.rc3", "driver": "23.0.rc3"},
        [
            (0, 0, 0, "310B1", "OK", 10.4, 66, 0, 957, 10810, None, None, None),
        ],
        [],
    ),
    "info_310b4_23.0.0_alarm_busNA_fixture.txt": (
        {"npu-smi": "23.0.0", "driver": "23.0.0"},
        [
            (0, 0, 0, "310B4", "Alarm", 0.0, 65, 0, 3628, 15609, None, None, None),
        ],
        [],
    ),
    "info_310p3_22.0.2-drv22.0.4_npu2144_indented.txt": (
        {"npu-smi": "22.0.2", "driver": "22.0.4"},
        [
            (2144, 0, 0, "310P3", "OK", None, 47, 0, 1807, 21527, None, None, "0000:86:00.0"),
        ],
        [],
    ),
    "info_310p3_25.3.rc1_npu6_noprocs.txt": (
        {"npu-smi": "25.3.rc1", "driver": "25.3.rc1"},
        [
            (6, 0, 0, "310P3", "OK", None, 50, 0, 1839, 21525, None, None, "0000:84:00.0"),
        ],
        [],
    ),
    "info_910a-class_23.0.5_health_warning_elided_hwdoc.txt": (
        {"npu-smi": "23.0.5", "driver": "23.0.5"},
        [
            (0, 0, 0, "xxx", "Warning", 73.1, 37, 0, 920, 13553, 0, 32768, "0000:61:00.0"),
            (7, 0, 1, "xxx", "OK", 67.0, 38, 0, 2346, 15567, 0, 32768, "0000:3D:00.0"),
        ],
        [],
    ),
    "info_910a-class_23.0.rc3-drv23.0.rc2.3_procs_xxx_hwdoc_indented.txt": (
        {"npu-smi": "23.0.rc3", "driver": "23.0.rc2.3"},
        [
            (0, 0, 0, "xxx", "OK", 73.4, 44, 0, 4565, 15137, 30710, 32768, "0000:C1:00.0"),
            (1, 0, 1, "xxx", "OK", 69.6, 39, 0, 4483, 15137, 30710, 32768, "0000:81:00.0"),
            (2, 0, 2, "xxx", "OK", 70.0, 36, 0, 4437, 15137, 30710, 32768, "0000:41:00.0"),
            (3, 0, 3, "xxx", "OK", 69.6, 44, 0, 3845, 15039, 30709, 32768, "0000:01:00.0"),
            (4, 0, 4, "xxx", "OK", 71.3, 40, 0, 4296, 15137, 30709, 32768, "0000:C2:00.0"),
            (5, 0, 5, "xxx", "OK", 67.0, 36, 0, 3758, 15137, 30709, 32768, "0000:82:00.0"),
            (6, 0, 6, "xxx", "OK", 71.7, 37, 0, 4581, 15137, 30710, 32768, "0000:42:00.0"),
            (7, 0, 7, "xxx", "OK", 69.1, 42, 0, 4690, 15039, 30710, 32768, "0000:02:00.0"),
        ],
        [
            (0, 0, 139667, "python", 30780),
            (1, 0, 139577, "python", 30782),
            (2, 0, 139446, "python", 30780),
            (3, 0, 139372, "python", 30780),
            (4, 0, 139258, "python", 30780),
            (5, 0, 139163, "python", 30780),
            (6, 0, 139126, "python", 30780),
            (7, 0, 139090, "python", 30780),
        ],
    ),
    "info_910a_22.0.3.1_hwdoc.txt": (
        {"npu-smi": "22.0.3.1", "driver": "22.0.3.1"},
        [
            (0, 0, 0, "910A", "OK", 67.2, 43, 0, 1867, 15077, 0, 32768, "0000:61:00.0"),
            (1, 0, 1, "910A", "OK", 63.3, 38, 0, 1867, 15077, 0, 32768, "0000:DB:00.0"),
            (2, 0, 2, "910A", "OK", 64.8, 34, 0, 1868, 15077, 0, 32768, "0000:B2:00.0"),
            (3, 0, 3, "910A", "OK", 191.7, 42, 0, 1866, 15077, 0, 32768, "0000:3E:00.0"),
            (4, 0, 4, "910A", "OK", 66.4, 44, 0, 1867, 15077, 0, 32768, "0000:60:00.0"),
            (5, 0, 5, "910A", "OK", 62.7, 33, 0, 1865, 15077, 0, 32768, "0000:DA:00.0"),
            (6, 0, 6, "910A", "OK", 64.5, 35, 0, 1865, 15077, 0, 32768, "0000:B1:00.0"),
            (7, 0, 7, "910A", "OK", 191.4, 40, 0, 1866, 15077, 0, 32768, "0000:3D:00.0"),
        ],
        [],
    ),
    "info_910a_24.1.rc2_procs_xxx_hwdoc.txt": (
        {"npu-smi": "24.1.RC2", "driver": "24.1.RC2"},
        [
            (0, 0, 0, "xxx", "OK", 70.5, 42, 0, 4252, 15137, 0, 32768, "0000:C1:00.0"),
            (1, 0, 1, "xxx", "OK", 71.2, 36, 0, 4666, 15137, 0, 32768, "0000:81:00.0"),
            (2, 0, 2, "xxx", "OK", 69.0, 35, 0, 4317, 15137, 0, 32768, "0000:41:00.0"),
            (3, 0, 3, "xxx", "Warning", 206.9, 39, 0, 3616, 15039, 0, 32768, "0000:01:00.0"),
            (4, 0, 4, "xxx", "OK", 70.2, 39, 0, 3708, 15137, 0, 32768, "0000:C2:00.0"),
            (5, 0, 5, "xxx", "OK", 64.9, 37, 0, 4346, 15137, 0, 32768, "0000:82:00.0"),
            (6, 0, 6, "xxx", "OK", 69.4, 40, 0, 4261, 15137, 0, 32768, "0000:42:00.0"),
            (7, 0, 7, "xxx", "Warning", 203.2, 42, 0, 4521, 15039, 0, 32768, "0000:02:00.0"),
        ],
        [
            (0, 0, 37656, "hlt_host_devmm_", 686),
            (0, 0, 37664, "hlt_host_devmm_", 686),
            (0, 0, 37640, "hlt_host_devmm_", 686),
            (0, 0, 37648, "hlt_host_devmm_", 686),
            (1, 0, 37665, "hlt_host_devmm_", 686),
            (1, 0, 37641, "hlt_host_devmm_", 686),
            (1, 0, 37649, "hlt_host_devmm_", 686),
            (1, 0, 37657, "hlt_host_devmm_", 686),
            (2, 0, 37658, "hlt_host_devmm_", 686),
            (2, 0, 37650, "hlt_host_devmm_", 686),
            (2, 0, 37666, "hlt_host_devmm_", 686),
            (2, 0, 37642, "hlt_host_devmm_", 686),
            (3, 0, 37643, "hlt_host_devmm_", 686),
            (3, 0, 37651, "hlt_host_devmm_", 686),
            (3, 0, 37659, "hlt_host_devmm_", 686),
            (3, 0, 37667, "hlt_host_devmm_", 686),
            (4, 0, 37668, "hlt_host_devmm_", 686),
            (4, 0, 37644, "hlt_host_devmm_", 686),
            (4, 0, 37652, "hlt_host_devmm_", 686),
            (4, 0, 37660, "hlt_host_devmm_", 686),
            (5, 0, 37653, "hlt_host_devmm_", 686),
            (5, 0, 37661, "hlt_host_devmm_", 686),
            (5, 0, 37669, "hlt_host_devmm_", 686),
            (5, 0, 37645, "hlt_host_devmm_", 686),
            (6, 0, 37646, "hlt_host_devmm_", 686),
            (6, 0, 37654, "hlt_host_devmm_", 686),
            (6, 0, 37662, "hlt_host_devmm_", 686),
            (6, 0, 37670, "hlt_host_devmm_", 686),
            (7, 0, 37671, "hlt_host_devmm_", 686),
            (7, 0, 37647, "hlt_host_devmm_", 686),
            (7, 0, 37655, "hlt_host_devmm_", 686),
            (7, 0, 37663, "hlt_host_devmm_", 686),
        ],
    ),
    "info_910b-legacy_24.1.0_proctable-cut.txt": (
        {"npu-smi": "24.1.0", "driver": "24.1.0"},
        [
            (0, 0, 0, "910B", "OK", 70.0, 34, 0, 1197, 13553, 1365, 32768, "0000:C1:00.0"),
            (1, 0, 1, "910B", "OK", 66.9, 34, 0, 2411, 15665, 4, 32768, "0000:81:00.0"),
            (2, 0, 2, "910B", "OK", 69.8, 34, 0, 2306, 15665, 4, 32768, "0000:41:00.0"),
            (3, 0, 3, "910B", "OK", 67.2, 33, 0, 2472, 15567, 3, 32768, "0000:01:00.0"),
            (4, 0, 4, "910B", "OK", 68.9, 33, 0, 2904, 13553, 3, 32768, "0000:C2:00.0"),
            (5, 0, 5, "910B", "OK", 66.3, 34, 0, 1694, 15665, 5, 32768, "0000:82:00.0"),
            (6, 0, 6, "910B", "OK", 70.1, 34, 0, 1987, 15665, 5, 32768, "0000:42:00.0"),
            (7, 0, 7, "910B", "OK", 65.6, 33, 0, 1777, 15567, 4, 32768, "0000:02:00.0"),
        ],
        [],
    ),
    "info_910b1_23.0.rc2_elided.txt": (
        {"npu-smi": "23.0.rc2", "driver": "23.0.rc2"},
        [
            (0, 0, 0, "910B1", "OK", 88.4, 46, 0, 0, 0, 4175, 65536, "0000:C1:00.0"),
            (1, 0, 1, "910B1", "OK", 92.1, 47, 0, 0, 0, 4175, 65536, "0000:01:00.0"),
            (7, 0, 2, "910B1", "OK", 92.7, 48, 0, 0, 0, 4174, 65536, "0000:42:00.0"),
        ],
        [],
    ),
    "info_910b2c_23.0.2.1_procs_trailingspace_fixture.txt": (
        {"npu-smi": "23.0.2.1", "driver": "23.0.2.1"},
        [
            (0, 0, 0, "910B2C", "OK", 88.6, 51, 0, 0, 0, 20701, 65536, "0000:5A:00.0"),
            (1, 0, 1, "910B2C", "OK", 99.6, 50, 0, 0, 0, 20687, 65536, "0000:19:00.0"),
        ],
        [(0, 0, 124528, "python3.8", 17400)],
    ),
    "info_910b3_25.2.0_procs_noname.txt": (
        {"npu-smi": "25.2.0", "driver": "25.2.0"},
        [
            (0, 0, 0, "910B3", "OK", 97.9, 34, 0, 0, 0, 3408, 65536, "0000:C1:00.0"),
            (1, 0, 1, "910B3", "OK", 89.5, 32, 0, 0, 0, 3408, 65536, "0000:C2:00.0"),
            (2, 0, 2, "910B3", "OK", 92.3, 32, 0, 0, 0, 41052, 65536, "0000:81:00.0"),
            (3, 0, 3, "910B3", "OK", 92.4, 32, 0, 0, 0, 3390, 65536, "0000:82:00.0"),
            (4, 0, 4, "910B3", "OK", 95.6, 37, 0, 0, 0, 3403, 65536, "0000:01:00.0"),
            (5, 0, 5, "910B3", "OK", 97.2, 38, 0, 0, 0, 3400, 65536, "0000:02:00.0"),
            (6, 0, 6, "910B3", "OK", 91.0, 36, 0, 0, 0, 3401, 65536, "0000:41:00.0"),
            (7, 0, 7, "910B3", "OK", 95.4, 37, 0, 0, 0, 3400, 65536, "0000:42:00.0"),
        ],
        [(2, 0, 1333928, None, 37709)],
    ),
    "info_910b4_26.0.rc1_wide_noprocs_truncated.txt": (
        {"npu-smi": "26.0.rc1", "driver": "26.0.rc1"},
        [
            (0, 0, 0, "910B4", "OK", 82.6, 32, 0, 0, 0, 2871, 32768, "0000:C1:00.0"),
        ],
        [],
    ),
    "info_a3_16die_synth.txt": (
        {"npu-smi": "26.0.rc2", "driver": "26.0.rc2"},
        [
            (0, 0, 0, "Ascend910", "OK", 160.5, 34, 0, 0, 0, 3000, 65536, "0000:10:00.0"),
            (0, 1, 1, "Ascend910", "OK", None, 35, 0, 0, 0, 3100, 65536, "0000:11:00.0"),
            (1, 0, 2, "Ascend910", "OK", 161.5, 34, 0, 0, 0, 3200, 65536, "0000:12:00.0"),
            (1, 1, 3, "Ascend910", "OK", None, 35, 0, 0, 0, 3300, 65536, "0000:13:00.0"),
            (2, 0, 4, "Ascend910", "OK", 162.5, 34, 0, 0, 0, 3400, 65536, "0000:14:00.0"),
            (2, 1, 5, "Ascend910", "OK", None, 35, 0, 0, 0, 3500, 65536, "0000:15:00.0"),
            (3, 0, 6, "Ascend910", "OK", 163.5, 34, 0, 0, 0, 3600, 65536, "0000:16:00.0"),
            (3, 1, 7, "Ascend910", "OK", None, 35, 0, 0, 0, 3700, 65536, "0000:17:00.0"),
            (4, 0, 8, "Ascend910", "OK", 164.5, 34, 0, 0, 0, 3800, 65536, "0000:18:00.0"),
            (4, 1, 9, "Ascend910", "OK", None, 35, 0, 0, 0, 3900, 65536, "0000:19:00.0"),
            (5, 0, 10, "Ascend910", "OK", 165.5, 34, 0, 0, 0, 30010, 65536, "0000:1A:00.0"),
            (5, 1, 11, "Ascend910", "OK", None, 35, 0, 0, 0, 30011, 65536, "0000:1B:00.0"),
            (6, 0, 12, "Ascend910", "OK", 166.5, 34, 0, 0, 0, 30012, 65536, "0000:1C:00.0"),
            (6, 1, 13, "Ascend910", "OK", None, 35, 0, 0, 0, 30013, 65536, "0000:1D:00.0"),
            (7, 0, 14, "Ascend910", "OK", 167.5, 34, 0, 0, 0, 30014, 65536, "0000:1E:00.0"),
            (7, 1, 15, "Ascend910", "OK", None, 35, 0, 0, 0, 30015, 65536, "0000:1F:00.0"),
        ],
        [
            (0, 0, 200000, "python3", 30000),
            (0, 1, 200001, "python3", 30000),
            (1, 0, 200002, "python3", 30001),
            (1, 1, 200003, "python3", 30001),
            (2, 0, 200004, "python3", 30002),
            (2, 1, 200005, "python3", 30002),
            (3, 0, 200006, "python3", 30003),
            (3, 1, 200007, "python3", 30003),
            (4, 0, 200008, "python3", 30004),
            (4, 1, 200009, "python3", 30004),
            (5, 0, 200010, "python3", 30005),
            (5, 1, 200011, "python3", 30005),
            (6, 0, 200012, "python3", 30006),
            (6, 1, 200013, "python3", 30006),
            (7, 0, 200014, "python3", 30007),
            (7, 1, 200015, "python3", 30007),
        ],
    ),
    "info_a3_ascend910_25.2.0_2npu_procs_fixture.txt": (
        {"npu-smi": "25.2.0", "driver": "25.2.0"},
        [
            (0, 0, 0, "Ascend910", "OK", 162.8, 37, 0, 0, 0, 3133, 65536, "0000:9C:00.0"),
            (0, 1, 1, "Ascend910", "OK", None, 37, 0, 0, 0, 2876, 65536, "0000:9E:00.0"),
            (1, 0, 2, "Ascend910", "OK", 167.1, 38, 0, 0, 0, 3116, 65536, "0000:37:00.0"),
            (1, 1, 3, "Ascend910", "OK", None, 38, 0, 0, 0, 10568, 65536, "0000:39:00.0"),
        ],
        [(1, 1, 990711, "python", 7746)],
    ),
    "info_a3_ascend910_26.0.rc2_wide_HEAD_excerpt.txt": (
        {"npu-smi": "26.0.rc2", "driver": "26.0.rc2"},
        [
            (0, 0, 0, "Ascend910", "OK", 162.6, 34, 0, 0, 0, 3419, 65536, "0000:9D:00.0"),
            (0, 1, 1, "Ascend910", "OK", None, 34, 0, 0, 0, 2874, 65536, "0000:9F:00.0"),
        ],
        [],
    ),
    "info_a3_ascend910_26.0.rc2_wide_TAIL_excerpt.txt": (
        {},
        [
            (7, 1, 0, "Ascend910", "OK", None, 35, 0, 0, 0, 31877, 65536, "0000:83:00.0"),
        ],
        [(0, 0, 632268, "python3.1", 197)],
    ),
}


def read(name: str) -> str:
    return (NPU / name).read_text()


def test_every_info_fixture_is_covered() -> None:
    assert sorted(p.name for p in NPU.glob("info_*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_table_exact_values(name: str) -> None:
    versions, cards, procs = EXPECTED[name]
    table = nps.parse_info(read(name))
    assert table.error is None
    assert table.versions == versions
    got = [
        (
            c.npu,
            c.chip,
            c.logical_id,
            c.name,
            c.health,
            c.power_w,
            c.temp_c,
            c.aicore_pct,
            c.memory_used_mb,
            c.memory_total_mb,
            c.hbm_used_mb,
            c.hbm_total_mb,
            c.bus_id,
        )
        for c in table.cards
    ]
    assert got == cards
    assert [(p.npu, p.chip, p.pid, p.name, p.memory_mb) for p in table.processes] == procs


def test_quirks_named_in_the_index() -> None:
    t = nps.parse_info(read("info_910b3_25.2.0_procs_noname.txt"))
    assert t.cards[2].hbm_used_mb == 41052 and t.cards[2].hbm_total_mb == 65536  # `41052/ 65536`
    assert t.cards[0].memory_used_mb == 0 and t.cards[0].memory_total_mb == 0  # a printed 0 / 0 stays 0
    assert t.processes[0].name is None and t.processes[0].memory_mb == 37709  # blank name cell
    a3 = nps.parse_info(read("info_a3_ascend910_25.2.0_2npu_procs_fixture.txt"))
    assert [c.power_w for c in a3.cards] == [162.8, None, 167.1, None]  # `-` on the second die
    assert [c.phy_id for c in a3.cards] == [0, 1, 2, 3]
    p310 = nps.parse_info(read("info_310p3_22.0.2-drv22.0.4_npu2144_indented.txt"))
    assert p310.cards[0].npu == 2144 and p310.cards[0].power_w is None  # Power NA
    old = nps.parse_info(read("info_310_21.0.4_4chips_hwdoc.txt"))
    assert [(c.chip, c.device_id, c.logical_id) for c in old.cards] == [(0, 3, 3), (1, 4, 4), (2, 5, 5), (3, 6, 6)]
    assert old.cards[2].hugepages_used == 0 and old.cards[2].hugepages_total == 970  # misaligned row
    alarm = nps.parse_info(read("info_310b4_23.0.0_alarm_busNA_fixture.txt"))
    assert alarm.cards[0].health == "Alarm" and alarm.cards[0].bus_id is None and alarm.cards[0].power_w == 0.0
    tail = nps.parse_info(read("info_a3_ascend910_26.0.rc2_wide_TAIL_excerpt.txt"))
    assert tail.processes[0].container_pid is None and tail.processes[0].name == "python3.1"


def test_sixteen_die_table() -> None:
    t = nps.parse_info(read("info_a3_16die_synth.txt"))
    assert len(t.cards) == 16 and [c.logical_id for c in t.cards] == list(range(16))
    assert [(c.npu, c.chip) for c in t.cards][-2:] == [(7, 0), (7, 1)]
    assert t.cards[15].hbm_used_mb == 30015 and len(t.processes) == 16


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("npusmi_err_dcmi_-8005.txt", "ret -8005"),
        ("npusmi_err_dcmi_-8020.txt", "ret -8020"),
        ("procmem_unsupported_310b_hwdoc.txt", "no card table"),
        ("help_info_23.0.rc2.txt", "no card table"),
    ],
)
def test_error_texts_are_states(name: str, needle: str) -> None:
    t = nps.parse_info(read(name))
    assert t.cards == [] and t.error is not None and needle in t.error


def test_empty_and_binary() -> None:
    assert nps.parse_info("").error == "npu-smi: empty output"
    assert "no card table" in (nps.parse_info("\x00\x01\x02\xff\n\x7f").error or "")


def test_mapping_and_list() -> None:
    assert nps.parse_map(read("map_310_21.0.4_mcu_hwdoc.txt")) == {(6, 0): 0, (6, 1): 1, (6, 2): 2, (6, 3): 3}
    assert nps.parse_map(read("map_910a_24.1.rc2_hwdoc.txt"))[(7, 0)] == 7  # "Ascend 910A" has a space
    assert nps.parse_map(read("map_910a_23.0.5_tabindent.txt"))[(3, 0)] == 3
    assert nps.parse_list(read("list_8npu_25.5.1_fixture.txt")) == [(i, 1) for i in range(8)]
    assert nps.parse_list(read("list_1npu_npuid6_container_csdn.txt")) == [(6, 1)]
    table = nps.parse_info(read("info_310_20.2.0_4chips_hwdoc.txt"))
    nps.assign_logical_ids(table.cards, {(215, 0): 3, (215, 1): 2, (215, 2): 1, (215, 3): 0})
    assert [c.logical_id for c in table.cards] == [3, 2, 1, 0]


def test_key_value_subcommands() -> None:
    u = nps.kv_card(read("usages_910b1_23.0.rc2.txt"))
    assert (u.npu, u.chip, u.hbm_total_mb, u.hbm_used_mb, u.aicore_pct) == (0, 0, 65536, 2621, 0)
    u = nps.kv_card(read("usages_910a_23.0.5_tabindent.txt"))
    assert u.hbm_total_mb == 31129 and u.memory_total_mb == 13553
    u = nps.kv_card(read("usages_310b_chip_hwdoc_tabindent.txt"))
    assert u.memory_total_mb == 10810 and u.memory_used_mb == round(10810 * 46 / 100) and u.npu is None
    c = nps.kv_card(read("common_910b1_23.0.rc2.txt"))
    assert (c.npu, c.temp_c, c.power_w) == (1, 46, 93.4)  # the MCU block's 38 °C is not the chip's
    blocks = nps.parse_kv_blocks(read("common_910b1_23.0.rc2.txt"))
    assert blocks[-1] == {"Chip Name": "mcu", "Temperature(C)": "38"}
    c = nps.kv_card(read("common_310b_mcu_hwdoc.txt"))
    assert (c.temp_c, c.power_w) == (38, None)  # 36 °C / 13.3 W belong to the MCU block
    assert nps.kv_card(read("temp_910b-a2_25.5.1_fixture.txt")).temp_c == 39
    assert nps.kv_card(read("power_910b-a2_25.5.1_fixture.txt")).power_w == 103.5
    b = nps.kv_card(read("board_910b-a2_25.5.1_fixture.txt"))
    assert b.bus_id == "0000:C1:00.0"
    assert nps.parse_kv(read("board_910b-a2_25.5.1_fixture.txt"))["Class ID"] == "NA"
    assert nps.parse_kv(read("board_chip_910a-class_hwdoc_indented.txt"))["VDie ID"].count(" ") >= 4
    h = nps.kv_card(read("health_chip_910a_tabindent_nonl.txt"))
    assert h.health == "OK"
    assert nps.parse_kv(read("ecc_910a-class_hwdoc_indented.txt"))["NPU ID"] == "1"


def test_num() -> None:
    assert [nps.num(x) for x in ("NA", "-", "", " 0 ", "12.8", "N/A", "nan", "1e400", "x")] == [
        None,
        None,
        None,
        0,
        12.8,
        None,
        None,
        None,
        None,
    ]


def test_fixture_dir_exists() -> None:
    assert isinstance(NPU, Path) and (NPU / "PROVENANCE.md").exists()
