"""How the supervisor turns a finished job into an outcome and metric points.

The classifier and the metrics parser live in `zerodeck.core.outcome`; this module is the one
place the launcher calls them, with a small built-in fallback (exit code, the builtin trainer's
JSON lines, the commonest OOM signatures) for installs where that package is absent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OOM_RE = re.compile(r"OutOfMemoryError|out of memory|can't allocate memory|MemoryError|std::bad_alloc", re.I)
TRANSIENT_RE = re.compile(r"connectFullMesh failed|Connection refused|EADDRINUSE|address already in use", re.I)


@dataclass
class Verdict:
    outcome: str
    reason: str | None = None
    device: str | None = None
    code: str | None = None
    rank: int | None = None
    excerpt: str | None = None


def diagnose_text(text: str, exit_code: int | None) -> Verdict:
    try:
        from zerodeck.core.outcome.classify import diagnose
    except ImportError:
        return _fallback(text, exit_code)
    d = diagnose(text, exit_code=exit_code)
    return Verdict(d.outcome, d.reason, d.device, d.code, d.rank, d.excerpt)


def is_transient(text: str, exit_code: int | None) -> bool:
    try:
        from zerodeck.core.outcome.classify import is_transient_startup_failure
    except ImportError:
        return bool(exit_code) and TRANSIENT_RE.search(text) is not None and '"zerodeck": "step"' not in text
    return bool(is_transient_startup_failure(text, exit_code=exit_code))


def _fallback(text: str, exit_code: int | None) -> Verdict:
    if exit_code == 0:
        return Verdict("succeeded")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if OOM_RE.search(ln):
            return Verdict("oom", ln.strip()[:200], excerpt=ln.strip())
    last = lines[-1].strip() if lines else ""
    return Verdict("failed", f"exit code {exit_code}: {last[:200]}" if last else f"exit code {exit_code}",
                   excerpt=last or None)


class MetricsReader:
    """Feed it log text as it grows; it yields MetricPoint dicts and keeps a summary."""

    def __init__(self) -> None:
        self._follower: Any = None
        try:
            from zerodeck.core.outcome.metrics import MetricsFollower

            self._follower = MetricsFollower()
        except ImportError:
            self._follower = None
        self._buf = ""
        self.summary: dict[str, Any] = {}

    def feed(self, chunk: str) -> list[dict[str, Any]]:
        if self._follower is not None:
            points = list(self._follower.feed(chunk))
            self.summary = dict(self._follower.summary())
            return points
        self._buf += chunk
        *lines, self._buf = self._buf.split("\n")
        points: list[dict[str, Any]] = []
        for ln in lines:
            if '"zerodeck"' not in ln:
                continue
            try:
                row = json.loads(ln[ln.index("{"):])
            except ValueError:
                continue
            if row.get("zerodeck") == "step":
                points.append({"step": row["step"], "t": row.get("t"), "loss": row.get("loss"),
                               "lr": row.get("lr"), "samples_per_s": row.get("samples_per_s"),
                               "tokens_per_s": row.get("tokens_per_s"),
                               "mem_gib": (row["peak_mem_mb"] / 1024) if row.get("peak_mem_mb") else None})
                self.summary.update(steps_done=row["step"], steps_total=row.get("total_steps"),
                                    final_loss=row.get("loss"))
            elif row.get("zerodeck") == "done":
                self.summary.update(steps_done=row.get("steps"), train_runtime_s=row.get("train_runtime"),
                                    samples_per_s=row.get("samples_per_s"), tokens_per_s=row.get("tokens_per_s"))
        return points


def llamafactory_results(output_dir: Path) -> dict[str, Any]:
    """What LLaMA-Factory left in its output dir: the final train metrics and the last log line."""
    out: dict[str, Any] = {}
    results = output_dir / "train_results.json"
    if results.is_file():
        try:
            data = json.loads(results.read_text())
        except ValueError:
            data = {}
        for src, dst in (("train_runtime", "train_runtime_s"), ("train_samples_per_second", "samples_per_s"),
                         ("train_loss", "train_loss")):
            if isinstance(data.get(src), int | float):
                out[dst] = float(data[src])
    log = output_dir / "trainer_log.jsonl"
    if log.is_file():
        rows = []
        for ln in log.read_text().splitlines():
            try:
                rows.append(json.loads(ln))
            except ValueError:
                continue
        if rows:
            out["steps_done"] = rows[-1].get("current_steps")
            out["steps_total"] = rows[-1].get("total_steps")
            losses = [r["loss"] for r in rows if isinstance(r.get("loss"), int | float)]
            if losses:
                out["final_loss"] = float(losses[-1])
    return out


def trainer_log_points(output_dir: Path) -> list[dict[str, Any]]:
    log = output_dir / "trainer_log.jsonl"
    if not log.is_file():
        return []
    points = []
    for ln in log.read_text().splitlines():
        try:
            r = json.loads(ln)
        except ValueError:
            continue
        if isinstance(r.get("loss"), int | float) and isinstance(r.get("current_steps"), int):
            points.append({"step": r["current_steps"], "t": r.get("elapsed_time") if isinstance(
                r.get("elapsed_time"), int | float) else None, "loss": float(r["loss"]),
                "lr": r.get("lr", r.get("learning_rate")), "epoch": r.get("epoch")})
    return points
