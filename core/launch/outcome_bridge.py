"""What the launcher reads besides the console log: LLaMA-Factory's output directory
(`trainer_log.jsonl`, `train_results.json`) and ms-swift's (`logging.jsonl`), which are more exact
than their consoles (transformers 5 prints four significant digits), and the retry rule.
Classification itself is `zerodeck.core.outcome.classify.diagnose`, used directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zerodeck.core.outcome.classify import Diagnosis, is_transient_startup_failure
from zerodeck.core.outcome.metrics import parse_results_json, parse_trainer_log_jsonl


def verdict(outcome: str, reason: str) -> Diagnosis:
    """An outcome the supervisor decides itself (no log to read: it could not start, or was stopped)."""
    return Diagnosis(outcome, None, None, None, "", reason)


def is_transient(text: str, exit_code: int | None) -> bool:
    return exit_code != 0 and is_transient_startup_failure(text)


def llamafactory_results(output_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Summary keys and metric points from LLaMA-Factory's or ms-swift's files in `output_dir` (empty if none)."""
    summary: dict[str, Any] = {}
    points: list[dict[str, Any]] = []
    log = output_dir / "trainer_log.jsonl"
    if not log.is_file():
        log = output_dir / "logging.jsonl"  # ms-swift: the same parser reads its lines
    if log.is_file():
        m = parse_trainer_log_jsonl(log)
        points = m.points
        summary.update({k: v for k, v in m.summary.items() if v is not None})
    results = output_dir / "train_results.json"
    if results.is_file():
        summary.update({k: v for k, v in parse_results_json(results).items() if v is not None})
    return summary, points
