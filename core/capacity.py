"""What one card of a run can hold: the single rule every view uses (recipe, plan, live, compare, charts).

A device card (npu-smi, NVIDIA) has a real total that telemetry reads, and that total wins over the
recipe's `hardware.card_gb` (a 64 GB 910B shows 65536 MB; a recipe may round). A CPU "card" is a
rank process: the memory telemetry sees beside it is the whole host's RAM, shared by every rank and
by everything else on the machine, so its capacity is what the recipe gave each rank, `card_gb`,
the figure the planner's verdict was made against. Without either there is no capacity (None).
"""

from __future__ import annotations

# Telemetry sources whose memory total is the card's own; any other (cpu ranks, host) measures the host.
DEVICE_SOURCES = frozenset({"npu-smi", "nvidia"})
MB_PER_GIB = 1024.0


def card_capacity_mb(*, device: str | None, card_gb: float | None, source: str | None = None,
                     total_mb: float | None = None) -> float | None:
    """A card's capacity in MB: the device's measured total, else the recipe's card_gb."""
    if device != "cpu" and source in DEVICE_SOURCES and total_mb:
        return float(total_mb)
    return float(card_gb) * MB_PER_GIB if card_gb else None


def card_capacity_gib(*, device: str | None, card_gb: float | None, source: str | None = None,
                      total_mb: float | None = None) -> float | None:
    """A card's capacity in GiB (`card_capacity_mb`, rounded for display)."""
    if device != "cpu" and source in DEVICE_SOURCES and total_mb:
        return round(total_mb / MB_PER_GIB, 3)
    return float(card_gb) if card_gb else None


def percent_of(used_gib: float | None, capacity_gib: float | None) -> float | None:
    """used / capacity in percent (one decimal), None when either is unknown."""
    if used_gib is None or not capacity_gib:
        return None
    return round(100.0 * used_gib / capacity_gib, 1)
