"""Bulk reads for comparing and exporting runs: many runs at once, without per-row ORM objects.

A comparison may span ten thousand runs, so these helpers select only the columns they need as
plain tuples in one statement (runs left-joined with their per-source aggregated card peaks), and
return the distinct recipe snapshots separately so each is parsed once by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import String, func, select, type_coerce
from sqlmodel import Session, col
from zerodeck.store.models import CardPeak, RecipeSnapshot, Run, TelemetrySample

# The Run columns a comparison reads, in the order of the returned record dicts.
RUN_FIELDS = (
    "id", "name", "recipe_hash", "grid", "tags", "status", "outcome", "reason", "outcome_device",
    "outcome_code", "outcome_rank", "exit_code", "backend", "device", "cards", "card_gb", "argv", "env",
    "created_at", "started_at", "ended_at", "predicted_peak_gib", "measured_peak_gib", "steps_done",
    "steps_total", "final_loss", "samples_per_s", "tokens_per_s", "step_time_s", "train_runtime_s", "summary",
)
_TIME_FIELDS = ("created_at", "started_at", "ended_at")
_JSON_FIELDS = ("tags", "argv", "env", "summary")
_CHUNK = 900  # stay far below SQLite's bound-parameter limit


def _utc(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    # SQLite keeps no zone; everything zerodeck writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def existing_run_ids(session: Session, ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for i in range(0, len(ids), _CHUNK):
        part = list(ids[i:i + _CHUNK])
        found.update(session.execute(select(Run.id).where(col(Run.id).in_(part))).scalars())
    return found


def latest_run_ids_by_name(session: Session, names: Iterable[str] | None = None) -> dict[str, int]:
    """The newest run (highest id) of each recipe name, or of the names given."""
    q = select(Run.name, func.max(Run.id)).group_by(Run.name)
    wanted = list(names) if names is not None else None
    if wanted is not None:
        q = q.where(col(Run.name).in_(wanted))
    return {name: int(rid) for name, rid in session.execute(q)}


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def run_records(session: Session, *, ids: Sequence[int] | None = None, tag: str | None = None,
                grid: str | None = None) -> list[dict[str, Any]]:
    """Runs (all, or those with the given ids / tag / grid) as dicts of RUN_FIELDS plus `card_peaks`.

    `card_peaks` is a list of {source, cards, peak_max_mb, peak_mean_mb, total_mb} per telemetry
    source, aggregated in SQL. JSON text columns are decoded. Ordered by run id.
    """
    peaks = (
        select(
            CardPeak.run_id,
            CardPeak.source,
            func.count(CardPeak.id).label("n"),
            func.max(CardPeak.peak_mb).label("pmax"),
            func.avg(CardPeak.peak_mb).label("pmean"),
            func.max(CardPeak.total_mb).label("tmax"),
        )
        .group_by(CardPeak.run_id, CardPeak.source)
        .subquery()
    )
    # Datetimes come back as stored text and are parsed by fromisoformat (C), not per-value type hooks.
    cols = [type_coerce(getattr(Run, f), String) if f in _TIME_FIELDS else getattr(Run, f) for f in RUN_FIELDS]
    base = (
        select(*cols, peaks.c.source, peaks.c.n, peaks.c.pmax, peaks.c.pmean, peaks.c.tmax)
        .outerjoin(peaks, peaks.c.run_id == Run.id)
        .order_by(col(Run.id))
    )
    if grid is not None:
        base = base.where(Run.grid == grid)
    if tag is not None:
        base = base.where(col(Run.tags).like(f"%{_like_literal(json.dumps(tag))}%", escape="\\"))
    if ids is None:
        batches = [base]
    else:
        unique = sorted(set(ids))
        batches = [base.where(col(Run.id).in_(unique[i:i + _CHUNK])) for i in range(0, len(unique), _CHUNK)]

    out: dict[int, dict[str, Any]] = {}
    nf = len(RUN_FIELDS)
    for q in batches:
        # Core execution: plain tuples without the ORM's per-row loading machinery.
        for row in session.connection().execute(q):
            rid = row[0]
            rec = out.get(rid)
            if rec is None:
                rec = dict(zip(RUN_FIELDS, row[:nf]))
                for key in _TIME_FIELDS:
                    rec[key] = _utc(rec[key])
                rec["card_peaks"] = []
                out[rid] = rec
            source, n, pmax, pmean, tmax = row[nf:]
            if source is not None:
                rec["card_peaks"].append(
                    {"source": source, "cards": n, "peak_max_mb": pmax, "peak_mean_mb": pmean, "total_mb": tmax}
                )
    records = [out[k] for k in sorted(out)]
    for key in _JSON_FIELDS:
        for rec, value in zip(records, _loads_many([r[key] for r in records])):
            rec[key] = value
    if tag is not None:  # LIKE found candidates; the JSON list decides
        records = [r for r in records if isinstance(r["tags"], list) and tag in r["tags"]]
    return records


def _loads_many(texts: list[str | None]) -> list[Any]:
    """Decode a column of JSON texts in one parser call (tens of thousands of calls cost a second)."""
    if all(texts):
        try:
            values = json.loads("[" + ",".join(texts) + "]")  # type: ignore[arg-type]
        except ValueError:
            pass
        else:
            if len(values) == len(texts):
                return list(values)
    return [_loads(t) for t in texts]


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def snapshot_texts(session: Session, hashes: Iterable[str]) -> dict[str, str]:
    """hash -> recipe TOML for the distinct snapshots asked for."""
    wanted = sorted(set(hashes))
    out: dict[str, str] = {}
    for i in range(0, len(wanted), _CHUNK):
        q = select(RecipeSnapshot.hash, RecipeSnapshot.toml).where(col(RecipeSnapshot.hash).in_(wanted[i:i + _CHUNK]))
        out.update({h: t for h, t in session.execute(q)})
    return out


def memory_series(session: Session, run_id: int) -> list[tuple[float, str, str, float | None, float | None]]:
    """(t, source, card, memory_used_mb, memory_total_mb) of one run's telemetry, in time order."""
    q = (
        select(TelemetrySample.t, TelemetrySample.source, TelemetrySample.card,
               TelemetrySample.memory_used_mb, TelemetrySample.memory_total_mb)
        .where(TelemetrySample.run_id == run_id)
        .order_by(col(TelemetrySample.t), col(TelemetrySample.id))
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in session.execute(q)]
