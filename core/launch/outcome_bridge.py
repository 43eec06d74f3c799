"""How the supervisor turns a finished job into an outcome and metric points.

The classification rules and the log parsers live in `zerodeck.core.outcome`; this module is the
one place the launcher calls them, plus reading what LLaMA-Factory leaves in its output directory
(`trainer_log.jsonl`, `train_results.json`), which is more exact than its console.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodeck.core.outcome.classify import diagnose, is_transient_startup_failure
from zerodeck.core.outcome.metrics import MetricsFollower, parse_results_json, parse_trainer_log_jsonl


@dataclass
class Verdict:
    outcome: str
    reason: str | None = None
    device: str | None = None
    code: str | None = None
    rank: int | None = None
    excerpt: str | None = None


def diagnose_text(text: str, exit_code: int | None, stopped_by_user: bool = False) -> Verdict:
    d = diagnose(text, exit_code=exit_code, stopped_by_user=stopped_by_user)
    return Verdict(d.outcome, d.reason or None, d.device, d.code, d.rank, d.excerpt or None)


def is_transient(text: str, exit_code: int | None) -> bool:
    return exit_code != 0 and is_transient_startup_failure(text)


class MetricsReader:
    """Feed it log text as it grows; it returns the points created or changed, and a summary."""

    def __init__(self) -> None:
        self._follower = MetricsFollower()
        self.summary: dict[str, Any] = {}

    def feed(self, chunk: str) -> list[dict[str, Any]]:
        points = self._follower.feed_text(chunk)
        self.summary = self._follower.summary()
        return points

    def flush(self) -> list[dict[str, Any]]:
        points = self._follower.flush()
        self.summary = self._follower.summary()
        return points


def llamafactory_results(output_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary keys and metric points from LLaMA-Factory's files in `output_dir` (empty if none)."""
    summary: dict[str, Any] = {}
    points: list[dict[str, Any]] = []
    log = output_dir / "trainer_log.jsonl"
    if log.is_file():
        m = parse_trainer_log_jsonl(log)
        points = m.points
        summary.update({k: v for k, v in m.summary.items() if v is not None})
    results = output_dir / "train_results.json"
    if results.is_file():
        summary.update({k: v for k, v in parse_results_json(results).items() if v is not None})
    return summary, points
