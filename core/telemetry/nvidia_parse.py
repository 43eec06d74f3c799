"""Parsers for saved or live `nvidia-smi` output: `--query-gpu ... --format=csv`, `-q -x` (XML) and
the plain box table. The live path prefers NVML (sources.py); these serve the fallback when the
NVML library does not load, and `zerodeck cards --from-nvidia-smi FILE`. None of them raises.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from zerodeck.core.telemetry.model import Card, Process
from zerodeck.core.telemetry.npusmi_parse import num

# What the live fallback asks for; parse_csv reads the header, so the order is free.
QUERY_FIELDS = ("index", "name", "pci.bus_id", "memory.used", "memory.total", "utilization.gpu",
                "temperature.gpu", "power.draw")
APPS_FIELDS = ("gpu_bus_id", "pid", "process_name", "used_memory")

_UNIT = re.compile(r"\s*(MiB|%|W|C|MHz)\s*$", re.I)


def _clean(value: str) -> str:
    value = value.strip().strip("[]")
    return _UNIT.sub("", value)


def _field(header: str) -> str:
    return header.split("[")[0].strip().lower()


def parse_csv(text: str) -> tuple[list[Card], str | None]:
    """`nvidia-smi --query-gpu=... --format=csv[,nounits]` (with its header line)."""
    if not isinstance(text, str) or not text.strip():
        return [], "nvidia-smi: empty output"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    header = [_field(h) for h in lines[0].split(",")]
    if "memory.total" not in header and "index" not in header:
        return [], f"nvidia-smi: not a --query-gpu CSV: {lines[0][:80]!r}"
    cards = []
    for position, line in enumerate(lines[1:]):
        values = [_clean(v) for v in line.split(",")]
        row = dict(zip(header, values))
        index = num(row.get("index"))
        card = Card(npu=index if isinstance(index, int) else position, chip=0)
        card.name = row.get("name") or None
        card.bus_id = row.get("pci.bus_id") or None
        card.hbm_used_mb = num(row.get("memory.used"))
        card.hbm_total_mb = num(row.get("memory.total"))
        card.aicore_pct = num(row.get("utilization.gpu"))
        card.temp_c = num(row.get("temperature.gpu"))
        card.power_w = num(row.get("power.draw"))
        card.logical_id = card.npu
        cards.append(card)
    return cards, None


def parse_apps_csv(text: str, bus_to_index: dict[str, int]) -> list[Process]:
    """`nvidia-smi --query-compute-apps=gpu_bus_id,pid,process_name,used_memory --format=csv`."""
    procs: list[Process] = []
    if not isinstance(text, str):
        return procs
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return procs
    header = [_field(h) for h in lines[0].split(",")]
    for line in lines[1:]:
        row = dict(zip(header, (_clean(v) for v in line.split(","))))
        pid = num(row.get("pid"))
        if not isinstance(pid, int):
            continue
        bus = (row.get("gpu_bus_id") or "").upper()
        procs.append(Process(npu=bus_to_index.get(bus), chip=0, pid=pid,
                             name=row.get("process_name") or None, memory_mb=num(row.get("used_memory"))))
    return procs


def _find(node: ET.Element, path: str) -> str | None:
    found = node.find(path)
    return _clean(found.text) if found is not None and found.text is not None else None


def parse_xml(text: str) -> tuple[list[Card], list[Process], str | None]:
    """`nvidia-smi -q -x`."""
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, TypeError, ValueError) as exc:
        return [], [], f"nvidia-smi: unreadable XML ({exc})"
    cards: list[Card] = []
    procs: list[Process] = []
    for index, gpu in enumerate(root.iter("gpu")):
        card = Card(npu=index, chip=0, logical_id=index)
        card.name = _find(gpu, "product_name")
        card.bus_id = gpu.get("id") or _find(gpu, "pci/pci_bus_id")
        card.hbm_used_mb = num(_find(gpu, "fb_memory_usage/used"))
        card.hbm_total_mb = num(_find(gpu, "fb_memory_usage/total"))
        card.aicore_pct = num(_find(gpu, "utilization/gpu_util"))
        card.temp_c = num(_find(gpu, "temperature/gpu_temp"))
        power = None
        for path in ("gpu_power_readings/instant_power_draw", "gpu_power_readings/power_draw",
                     "power_readings/power_draw", "gpu_power_readings/average_power_draw"):
            power = num(_find(gpu, path))
            if power is not None:
                break
        card.power_w = power
        cards.append(card)
        for info in gpu.iter("process_info"):
            pid = num(_find(info, "pid"))
            if isinstance(pid, int):
                procs.append(Process(npu=index, chip=0, pid=pid, name=_find(info, "process_name"),
                                     memory_mb=num(_find(info, "used_memory"))))
    if not cards:
        return [], [], "nvidia-smi: no <gpu> in the XML"
    return cards, procs, None


_GPU_LINE = re.compile(r"^\|\s*(\d+)\s+(.+?)\s+(On|Off)\s*\|\s*(\S+)\s+\S+\s*\|")
_USE_LINE = re.compile(r"^\|\s*(\S+)\s+(\S+?)C?\s+(P\d+|\S+)\s+(\S+?)W?\s*/\s*(\S+?)W?\s*\|"
                       r"\s*(\d+)MiB\s*/\s*(\d+)MiB\s*\|\s*(\S+?)%?\s")
_PROC_LINE = re.compile(r"^\|\s*(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(.+?)\s+(\d+|N/A)(?:MiB)?\s*\|")


def parse_plain(text: str) -> tuple[list[Card], list[Process], str | None]:
    """The default `nvidia-smi` box table."""
    if not isinstance(text, str):
        return [], [], "nvidia-smi: output is not text"
    cards: list[Card] = []
    procs: list[Process] = []
    in_procs = False
    last: Card | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if "Processes:" in line:
            in_procs = True
            continue
        if in_procs:
            m = _PROC_LINE.match(line)
            if m:
                procs.append(Process(npu=int(m.group(1)), chip=0, pid=int(m.group(4)), name=m.group(6),
                                     memory_mb=num(m.group(7))))
            continue
        m = _GPU_LINE.match(line)
        if m:
            index = int(m.group(1))
            last = Card(npu=index, chip=0, logical_id=index, name=m.group(2).strip(), bus_id=m.group(4))
            cards.append(last)
            continue
        m = _USE_LINE.match(line)
        if m and last is not None and last.hbm_total_mb is None:
            last.temp_c = num(m.group(2))
            last.power_w = num(m.group(4))
            last.hbm_used_mb = num(m.group(6))
            last.hbm_total_mb = num(m.group(7))
            last.aicore_pct = num(m.group(8))
    if not cards:
        return [], [], "nvidia-smi: no GPU table in the output"
    return cards, procs, None


def parse_any(text: str) -> tuple[list[Card], list[Process], str | None]:
    """Whichever of the three formats `text` is."""
    if not isinstance(text, str) or not text.strip():
        return [], [], "nvidia-smi: empty output"
    head = text.lstrip()[:200]
    if head.startswith("<?xml") or "<nvidia_smi_log" in head:
        return parse_xml(text)
    if "NVIDIA-SMI" in text[:2000]:
        return parse_plain(text)
    cards, error = parse_csv(text)
    return cards, [], error
