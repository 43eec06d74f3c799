"""Eval loss read back from a run's log: the store keeps training points only (one row per step), so
every view that shows eval loss (the TUI's run detail, `zerodeck chart loss`) reads it from the log."""

from __future__ import annotations

import os

from zerodeck.core.outcome.metrics import MetricsFollower

EVAL_SCAN_BYTES = 16 * 1024 * 1024


def eval_points(path: str | None) -> list[tuple[int, float]]:
    """(step, eval loss) from a run's log. Reads at most the last 16 MiB, a line at a time, feeding the
    parser just eval lines and tqdm bars (their step)."""
    if not path:
        return []
    follower = MetricsFollower()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            start = max(0, f.tell() - EVAL_SCAN_BYTES)
            f.seek(start)
            if start:
                f.readline()  # a partial first line
            for raw in f:
                if b"eval_loss" in raw or b"%|" in raw:
                    follower.feed(raw.decode("utf-8", "replace"))
    except OSError:
        return []
    return follower.eval_points
