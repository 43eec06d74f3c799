"""Comparison rows: one plain dict per run, built from the store's bulk records and the recipe snapshot.

Rows are plain dicts keyed by `fields.COLUMNS` keys (plus `summary.*` extras) so the CLI exports,
the TUI's Compare screen and scripts all consume the same objects. Each distinct recipe snapshot is
parsed once; a snapshot that no longer validates (an older schema, a renamed model) still yields
whatever axes it holds, because a past run must stay comparable.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tomllib
from zerodeck.core.errors import BadInput

MB_PER_GIB = 1024.0
# Telemetry sources that measure the host, not a card: used only when nothing else was recorded.
HOST_SOURCES = ("host",)


@dataclass
class Selection:
    """Which runs to compare. No refs, no --all, no tag/grid: the latest run of each recipe."""

    refs: Sequence[str] = ()
    all: bool = False
    tag: str | None = None
    grid: str | None = None
    latest_per_recipe: bool = field(default=False)

    @property
    def implicit_latest(self) -> bool:
        return not self.refs and not self.all and self.tag is None and self.grid is None


def recipe_axes(toml_text: str | None) -> dict[str, Any]:
    """The recipe's comparison axes, with the recipe model's defaults for keys the file leaves out."""
    from zerodeck.core.recipe.model import HardwareSpec, MethodSpec, TrainSpec, ZeroSpec

    try:
        data = tomllib.loads(toml_text or "")
    except tomllib.TOMLDecodeError:
        data = {}

    def get(section: str, key: str, spec: Any) -> Any:
        sec = data.get(section)
        if isinstance(sec, dict) and key in sec:
            return sec[key]
        f = spec.model_fields.get(key)
        return None if f is None else f.default

    model: dict[str, Any] = data["model"] if isinstance(data.get("model"), dict) else {}
    label = model.get("name") or (str(model.get("path") or "").rstrip("/").rsplit("/", 1)[-1] or None)
    method = get("method", "kind", MethodSpec)
    data_sec: dict[str, Any] = data["data"] if isinstance(data.get("data"), dict) else {}
    return {
        "model": label,
        "method": method,
        "lora_rank": get("method", "rank", MethodSpec) if method == "lora" else None,
        "zero_stage": get("zero", "stage", ZeroSpec),
        "offload": get("zero", "offload", ZeroSpec),
        "device": get("hardware", "device", HardwareSpec),
        "cards": get("hardware", "cards", HardwareSpec),
        "card_gb": get("hardware", "card_gb", HardwareSpec),
        "micro_batch": get("train", "micro_batch", TrainSpec),
        "seq_len": get("train", "seq_len", TrainSpec),
        "data_samples": data_sec.get("samples"),
    } if data else {}


def _gib(mb: float | None) -> float | None:
    return None if mb is None else round(mb / MB_PER_GIB, 3)


def _card_peak(peaks: list[dict[str, Any]]) -> dict[str, Any] | None:
    cards = [p for p in peaks if p["source"] not in HOST_SOURCES and p["peak_max_mb"] is not None]
    pool = cards or [p for p in peaks if p["peak_max_mb"] is not None]
    if not pool:
        return None
    # Several card sources for one run (rare): the one that saw the most cards speaks.
    return max(pool, key=lambda p: (p["cards"], p["peak_max_mb"]))


def _failure(rec: dict[str, Any]) -> str | None:
    outcome = rec.get("outcome")
    if outcome in (None, "succeeded"):
        return None
    parts = [str(p) for p in (rec.get("outcome_device"), rec.get("outcome_code")) if p]
    if rec.get("outcome_rank") is not None:
        parts.append(f"rank {rec['outcome_rank']}")
    return f"{outcome}: {' '.join(parts)}" if parts else str(outcome)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _command(argv: Any) -> str | None:
    if not isinstance(argv, list) or not argv:
        return None
    return shlex.join(str(a) for a in argv)


def _env(env: Any) -> str | None:
    if not isinstance(env, dict) or not env:
        return None
    return " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())


def build_row(rec: dict[str, Any], axes: dict[str, Any]) -> dict[str, Any]:
    """One comparison row from a store record (`store.compare_queries.run_records`) and its axes."""
    cards = rec.get("cards") or axes.get("cards")
    peak = _card_peak(rec.get("card_peaks") or [])
    peak_max = _gib(peak["peak_max_mb"]) if peak else rec.get("measured_peak_gib")
    peak_mean = _gib(peak["peak_mean_mb"]) if peak else None
    capacity = _gib(peak["total_mb"]) if peak and peak["total_mb"] else None
    if capacity is None:
        capacity = rec.get("card_gb") if rec.get("card_gb") is not None else axes.get("card_gb")
    started, ended = rec.get("started_at"), rec.get("ended_at")
    wall = round((ended - started).total_seconds(), 1) if started and ended else None
    tps = rec.get("tokens_per_s")
    tags = rec.get("tags")
    row: dict[str, Any] = {
        "id": rec["id"],
        "name": rec.get("name"),
        "grid": rec.get("grid"),
        "tags": ",".join(str(t) for t in tags) if isinstance(tags, list) and tags else None,
        "model": axes.get("model"),
        "method": axes.get("method"),
        "lora_rank": axes.get("lora_rank"),
        "zero_stage": axes.get("zero_stage"),
        "offload": axes.get("offload"),
        "device": rec.get("device") or axes.get("device"),
        "cards": cards,
        "micro_batch": axes.get("micro_batch"),
        "seq_len": axes.get("seq_len"),
        "data_samples": axes.get("data_samples"),
        "status": rec.get("status"),
        "outcome": rec.get("outcome"),
        "failure": _failure(rec),
        "reason": rec.get("reason"),
        "predicted_peak_gib": rec.get("predicted_peak_gib"),
        "peak_max_gib": peak_max,
        "peak_mean_gib": peak_mean,
        "capacity_gib": capacity,
        "peak_pct": round(100.0 * peak_max / capacity, 1) if peak_max is not None and capacity else None,
        "samples_per_s": rec.get("samples_per_s"),
        "tokens_per_s_card": round(tps / cards, 2) if tps is not None and cards else None,
        "step_time_s": rec.get("step_time_s"),
        "wall_time_s": wall,
        "steps_done": rec.get("steps_done"),
        "final_loss": rec.get("final_loss"),
        "started_at": _iso(started),
        "command": _command(rec.get("argv")),
        "env": _env(rec.get("env")),
    }
    summary = rec.get("summary")
    if isinstance(summary, dict):
        from zerodeck.core.compare.fields import SUMMARY_PREFIX

        for key, value in summary.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                row[f"{SUMMARY_PREFIX}{key}"] = value
    return row


def rows_from_records(records: list[dict[str, Any]], snapshots: dict[str, str]) -> list[dict[str, Any]]:
    axes_by_hash = {h: recipe_axes(t) for h, t in snapshots.items()}
    return [build_row(r, axes_by_hash.get(r["recipe_hash"], {})) for r in records]


def resolve_refs(session: Any, refs: Sequence[str]) -> list[int]:
    """Run ids from arguments that are ids, or recipe names (their latest run). Unknown ones: BadInput."""
    from zerodeck.store.compare_queries import existing_run_ids, latest_run_ids_by_name

    ids = [int(r) for r in refs if r.isdigit()]
    names = [r for r in refs if not r.isdigit()]
    found = existing_run_ids(session, ids) if ids else set()
    by_name = latest_run_ids_by_name(session, names) if names else {}
    unknown = [r for r in refs if (r.isdigit() and int(r) not in found) or (not r.isdigit() and r not in by_name)]
    if unknown:
        raise BadInput(f"unknown run{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (see `zerodeck runs`)")
    out: list[int] = []
    for r in refs:
        rid = int(r) if r.isdigit() else by_name[r]
        if rid not in out:
            out.append(rid)
    return out


def load_rows(session: Any, selection: Selection) -> list[dict[str, Any]]:
    """The comparison rows of the selected runs, in run-id order (ids given: in the order given)."""
    from zerodeck.store.compare_queries import latest_run_ids_by_name, run_records, snapshot_texts

    ids: list[int] | None = None
    if selection.refs:
        ids = resolve_refs(session, selection.refs)
    elif selection.implicit_latest or selection.latest_per_recipe:
        ids = sorted(latest_run_ids_by_name(session).values())
    records = run_records(session, ids=ids, tag=selection.tag, grid=selection.grid)
    if selection.refs and ids is not None:
        order = {rid: i for i, rid in enumerate(ids)}
        records.sort(key=lambda r: order[r["id"]])
    snaps = snapshot_texts(session, {r["recipe_hash"] for r in records})
    return rows_from_records(records, snaps)
