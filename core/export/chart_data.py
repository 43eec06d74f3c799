"""What a chart draws, as plain numbers: no plotting library here, so the CLI checks a chart's input
(its file format, its runs, their points) before it pays for importing matplotlib.

`memory_series` turns telemetry rows into per-card lines with the card capacity of `core.capacity`
(the same line compare and the live view draw); `Curve` holds one run's train and eval loss (or
throughput) by step, or a resume chain's as one line with the steps it restarted at (`stitch`,
`drop_ancestors`); `thin` and `downsample` bound the points per line so an SVG or PDF of a long run
stays small, keeping the extremes a reader looks for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodeck.core.capacity import DEVICE_SOURCES, card_capacity_gib
from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import _

CHART_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MAX_POINTS = 2000  # per line: a 10-hour run sampled every second would otherwise be a 36,000-point path
HOST_SOURCES = ("host",)

Points = list[tuple[float, float]]


def chart_format(path: str | Path) -> str:
    """png / svg / pdf from the file's suffix; anything else is bad input (exit 2)."""
    suffix = Path(path).suffix.lower()
    if suffix not in CHART_FORMATS:
        raise BadInput(_("{path}: charts are written as PNG, SVG or PDF; name the file *.png, *.svg or *.pdf")
                       .format(path=path))
    return CHART_FORMATS[suffix]


@dataclass(frozen=True)
class Curve:
    """One run's line(s) by step: `train` always, `eval` when the log reported evaluations."""

    label: str
    train: Points = field(default_factory=list)
    eval: Points = field(default_factory=list)
    # A resume chain drawn as one line: the earlier runs' ids (oldest first) and the steps it restarted at.
    resumed_from: tuple[int, ...] = ()
    resumes: tuple[float, ...] = ()


def stitch(parts: Sequence[tuple[float | None, Points]]) -> Points:
    """A resume chain's points as one line, by the rule of `Store.chain_metrics`: each part, given with
    the step its run restarted at (None: its own first point), replaces the earlier parts' points from
    that step on (a step re-done after the checkpoint counts once, from the later run)."""
    out: dict[float, float] = {}
    for start, points in parts:
        if not points:
            continue
        cut = min(p[0] for p in points) if start is None else start
        out = {x: y for x, y in out.items() if x < cut}
        out.update(dict(points))
    return sorted(out.items())


def drop_ancestors(chains: Sequence[Sequence[int]]) -> list[int]:
    """Indices of the chains (each a run's ids, oldest first, the run itself last) to draw: a run given
    together with a later run of its own chain is already a part of that run's line."""
    keep = []
    for i, chain in enumerate(chains):
        if not chain:  # a run deleted meanwhile: nothing to draw
            continue
        own = chain[-1]
        if not any(j != i and own in other[:-1] for j, other in enumerate(chains)):
            keep.append(i)
    return keep


@dataclass(frozen=True)
class MemoryPanel:
    """One run's per-card memory over time (GiB by seconds since its first sample) and card capacity."""

    label: str
    series: dict[str, Points]
    capacity_gib: float | None


def card_peak_rows(run: dict[str, Any], peaks: Sequence[Any], *, device: str | None,
                   card_gb: float | None) -> list[dict[str, Any]]:
    """One run's recorded card peaks (`Store.card_peaks`) as rows for the peaks chart, one per card,
    each with its capacity by `core.capacity.card_capacity_gib` (the rule compare applies to the run).
    The host's RAM is left out beside card peaks, as compare leaves it out of the run's peak."""
    cards = [p for p in peaks if p.source not in HOST_SOURCES and p.peak_mb is not None]
    use = cards or [p for p in peaks if p.peak_mb is not None]
    return [{"label": f"{p.source} {p.card}", "outcome": run.get("outcome"),
             "peak_max_gib": round(p.peak_mb / 1024.0, 3), "predicted_peak_gib": run.get("predicted_peak_gib"),
             "capacity_gib": card_capacity_gib(device=device, card_gb=card_gb, source=p.source, total_mb=p.total_mb)}
            for p in use]


def memory_series(samples: Sequence[tuple[float, str, str, float | None, float | None]], *,
                  device: str | None = None, card_gb: float | None = None) -> tuple[dict[str, Points], float | None]:
    """Telemetry rows (t, source, card, used_mb, total_mb) -> ({card label: [(t, GiB)]}, capacity GiB).

    Host memory is left out when card samples exist: it is another scale and another question. The
    capacity follows `core.capacity.card_capacity_gib` (a CPU rank's is the run's card_gb, never the
    host RAM its samples carry as their total), so the chart and compare draw the same line.
    """
    cards = [s for s in samples if s[1] not in HOST_SOURCES]
    use = cards or list(samples)
    series: dict[str, Points] = {}
    totals: dict[str, float] = {}
    for t, source, card, used, total in use:
        if used is None:
            continue
        series.setdefault(f"{source} {card}", []).append((float(t), used / 1024.0))
        if total is not None:
            totals[source] = max(totals.get(source, 0.0), total)
    dev = [src for src in totals if src in DEVICE_SOURCES]
    cap = card_capacity_gib(device=device, card_gb=card_gb, source=dev[0] if dev else next(iter(totals), None),
                            total_mb=max(totals[d] for d in dev) if dev else None)
    return {k: downsample(v) for k, v in series.items()}, cap


def downsample(points: Points, limit: int = MAX_POINTS) -> Points:
    """At most `limit` points per line, keeping each bucket's highest sample: a peak must stay visible."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / limit)
    return [max(points[i:i + size], key=lambda p: p[1]) for i in range(0, len(points), size)]


def thin(points: Points, limit: int = MAX_POINTS) -> Points:
    """At most about `limit` points, keeping each bucket's lowest and highest (in step order): a loss
    spike and the best loss both survive."""
    if len(points) <= limit:
        return points
    size = math.ceil(2 * len(points) / limit)
    out: Points = []
    for i in range(0, len(points), size):
        bucket = points[i:i + size]
        lo, hi = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out
