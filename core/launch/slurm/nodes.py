"""The per-node telemetry files of a Slurm run, read back into the store's samples and peaks.

Each node's sampler appends JSON lines to `RUN_DIR/telemetry/NODE.jsonl`; the follower reads the
files whole at each flush (they are small: one line a second per node) and replaces the run's
telemetry. A card is named `NODE:CARD` (per node, per card peaks), the node's host memory is
source `host`, card `NODE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zerodeck.store.records import CardPeakRecord, SampleRecord

SOURCE = {"npu": "npu-smi", "cuda": "nvidia", "cpu": "cpu"}
MAX_POINTS = 600  # samples kept per card (peaks are taken from every reading)


def read_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(value, dict):
            out.append(value)
    return out


def node_telemetry(telemetry_dir: Path, device: str, t0: float | None = None
                   ) -> tuple[list[SampleRecord], list[CardPeakRecord], list[str]]:
    """Samples, per-node per-card peaks, and the nodes that reported, from every node's file."""
    source = SOURCE.get(device, "cpu")
    samples: list[SampleRecord] = []
    peaks: dict[tuple[str, str], dict[str, Any]] = {}
    nodes: list[str] = []
    files = sorted(telemetry_dir.glob("*.jsonl")) if telemetry_dir.is_dir() else []
    lines = {f.stem: read_lines(f) for f in files}
    walls = [line["wall"] for rows in lines.values() for line in rows if isinstance(line.get("wall"), int | float)]
    start = t0 if t0 is not None else (min(walls) if walls else 0.0)
    for node, rows in lines.items():
        if rows:
            nodes.append(node)
        for row in rows:
            wall = row.get("wall")
            if not isinstance(wall, int | float):
                continue
            t = round(wall - start, 3)
            entries = [(source, f"{node}:{c.get('card')}", c.get("used_mb"), c.get("total_mb"), c.get("util_pct"),
                        c.get("power_w"), c.get("temp_c")) for c in row.get("cards", []) if isinstance(c, dict)]
            if row.get("host_used_mb") is not None:
                entries.append(("host", node, row.get("host_used_mb"), row.get("host_total_mb"), None, None, None))
            for src, card, used, total, util, power, temp in entries:
                samples.append(SampleRecord(t=t, source=src, card=card, memory_used_mb=used, memory_total_mb=total,
                                            util_pct=util, power_w=power, temp_c=temp))
                peak = peaks.setdefault((src, card), {"peak_mb": None, "baseline_mb": used, "total_mb": total})
                if used is not None and (peak["peak_mb"] is None or used > peak["peak_mb"]):
                    peak["peak_mb"] = used
                if total is not None:
                    peak["total_mb"] = total
    return _thin(samples), [CardPeakRecord(source=s, card=c, **p) for (s, c), p in peaks.items()], nodes


def _thin(samples: list[SampleRecord]) -> list[SampleRecord]:
    """At most MAX_POINTS evenly spread samples per (source, card): a long run's series stays small."""
    by_card: dict[tuple[str, str], list[SampleRecord]] = {}
    for s in samples:
        by_card.setdefault((s.source, s.card), []).append(s)
    out: list[SampleRecord] = []
    for series in by_card.values():
        stride = -(-len(series) // MAX_POINTS)
        out += series[::stride]
    return out
