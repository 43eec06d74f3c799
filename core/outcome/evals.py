"""Eval loss read back from a run's log: the store keeps training points only (one row per step), so
every view that shows eval loss (the TUI's run detail, `zerodeck chart loss`) reads it from the log."""

from __future__ import annotations

import os

from zerodeck.core.outcome.metrics import MetricsFollower

EVAL_SCAN_BYTES = 16 * 1024 * 1024
# Where HF's `Total optimization steps = N` is looked for when the log is longer than the scan: it is
# printed once, before the first step.
HEAD_SCAN_BYTES = 4 * 1024 * 1024
_TOTAL = b"Total optimization steps"


def eval_points(path: str | None) -> list[tuple[int, float]]:
    """(step, eval loss) from a run's log. Reads at most the last 16 MiB, a line at a time, feeding the
    parser the eval lines, the line announcing the steps in all, and tqdm bars (their step).

    An HF eval dict names no step: it is the training bar's. Its own bar (batches of the eval set)
    comes just before it, so the parser must know the training's total to pass that one over (without
    it, every eval of a LLaMA-Factory run read as step 0). Once the total is known only the last
    training bar before each eval is parsed: parsing every bar of a long run cost more than the chart."""
    if not path:
        return []
    follower = MetricsFollower()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            start = max(0, f.tell() - EVAL_SCAN_BYTES)
            f.seek(0)
            if start:
                for raw in f:
                    if _TOTAL in raw:
                        _feed(follower, raw)
                        break
                    if f.tell() >= min(start, HEAD_SCAN_BYTES):
                        break
                f.seek(start)
                f.readline()  # a partial first line
            mark: bytes | None = None  # the training bar's `/N [`, once N is known
            pending: bytes | None = None  # the last training bar line not parsed yet
            for raw in f:
                if b"eval_loss" in raw:
                    if pending is not None:
                        _feed(follower, pending)
                        pending = None
                    _feed(follower, raw)
                elif b"%|" in raw:
                    if mark is None:
                        _feed(follower, raw)
                    elif mark in raw:
                        pending = raw
                elif _TOTAL in raw:
                    _feed(follower, raw)
                if mark is None and follower.steps_total:
                    mark = b"/%d [" % follower.steps_total
    except OSError:
        return []
    return follower.eval_points


def _feed(follower: MetricsFollower, raw: bytes) -> None:
    follower.feed(raw.decode("utf-8", "replace"))
