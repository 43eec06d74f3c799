"""Per-card sample series that stay small however long the run.

Samples land in time buckets; when a card holds more than MAX_POINTS buckets the bucket width
doubles and neighbours merge. A merge keeps the highest memory (so a spike is never averaged away)
and the mean of utilisation, power and temperature. A 72-hour run at 1 Hz keeps at most
MAX_POINTS points per card, in memory and in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_POINTS = 720

Value = float | int | None


@dataclass
class Point:
    t: float
    memory_used_mb: Value
    memory_total_mb: Value
    util_pct: Value
    power_w: Value
    temp_c: Value
    n: int = 1


def _max(a: Value, b: Value) -> Value:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _mean(a: Value, na: int, b: Value, nb: int) -> Value:
    if a is None:
        return b
    if b is None:
        return a
    return round((a * na + b * nb) / (na + nb), 2)


def _merge(p: Point, q: Point) -> Point:
    return Point(t=p.t, memory_used_mb=_max(p.memory_used_mb, q.memory_used_mb),
                 memory_total_mb=_max(p.memory_total_mb, q.memory_total_mb),
                 util_pct=_mean(p.util_pct, p.n, q.util_pct, q.n), power_w=_mean(p.power_w, p.n, q.power_w, q.n),
                 temp_c=_mean(p.temp_c, p.n, q.temp_c, q.n), n=p.n + q.n)


@dataclass
class Series:
    width: float = 1.0  # seconds per bucket
    cap: int = MAX_POINTS
    points: list[Point] = field(default_factory=list)

    def add(self, point: Point) -> None:
        if self.points and int(point.t // self.width) == int(self.points[-1].t // self.width):
            self.points[-1] = _merge(self.points[-1], point)
        else:
            self.points.append(point)
        while len(self.points) > self.cap:
            self._coarsen()

    def _coarsen(self) -> None:
        self.width *= 2
        merged: list[Point] = []
        for point in self.points:
            if merged and int(point.t // self.width) == int(merged[-1].t // self.width):
                merged[-1] = _merge(merged[-1], point)
            else:
                merged.append(point)
        self.points = merged
