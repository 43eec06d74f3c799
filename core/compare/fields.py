"""The comparison's columns: key, label and unit, shared by every export format and the TUI.

One list so the terminal table, the Markdown, the CSV headers and the JSON column metadata never
disagree about what a column is called or in which unit its numbers are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    unit: str | None = None
    kind: str = "text"  # text | int | num
    # Shown only when some row carries the key (resume-chain columns): a comparison of runs that were
    # never resumed keeps the columns, and the CSV / JSON, it always had.
    optional: bool = False

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "num")


def _c(key: str, label: str, unit: str | None = None, kind: str = "text", optional: bool = False) -> Column:
    return Column(key, label, unit, kind, optional)


COLUMNS: tuple[Column, ...] = (
    _c("id", "run", kind="int"),
    _c("name", "recipe"),
    _c("grid", "grid"),
    _c("host", "host", optional=True),  # only when the runs come from more than one server
    _c("tags", "tags"),
    # recipe axes
    _c("model", "model"),
    _c("method", "method"),
    _c("lora_rank", "LoRA rank", kind="int"),
    _c("zero_stage", "ZeRO stage", kind="int"),
    _c("offload", "offload"),
    _c("device", "device"),
    _c("cards", "cards", kind="int"),
    _c("micro_batch", "micro-batch", kind="int"),
    _c("seq_len", "seq len", "tokens", "int"),
    _c("data_samples", "data samples", kind="int"),
    # outcome
    _c("status", "status"),
    _c("outcome", "outcome"),
    _c("failure", "failure class"),
    _c("reason", "reason"),
    # memory, per card
    _c("predicted_peak_gib", "predicted peak/card", "GiB", "num"),
    _c("peak_max_gib", "peak max/card", "GiB", "num"),
    _c("peak_mean_gib", "peak mean/card", "GiB", "num"),
    _c("capacity_gib", "capacity/card", "GiB", "num"),
    _c("peak_pct", "peak/capacity", "%", "num"),
    # speed and result
    _c("samples_per_s", "throughput", "samples/s", "num"),
    _c("tokens_per_s_card", "throughput/card", "tokens/s", "num"),
    _c("step_time_s", "step time", "s", "num"),
    _c("wall_time_s", "wall time", "s", "num"),
    _c("steps_done", "steps", kind="int"),
    _c("final_loss", "final loss", kind="num"),
    _c("started_at", "started", "UTC"),
    # resume chain (issue 18): a resumed run's steps and wall time are its whole chain's
    _c("parent_id", "resumed from run", kind="int", optional=True),
    _c("resumed_from", "resumed from checkpoint", optional=True),
    # reproduce
    _c("command", "command"),
    _c("env", "environment"),
)

BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}
IDENTITY = ("id", "name")  # kept by --diff-only: a row must still say which run it is
REPRODUCE = ("command", "env")  # long cells: left out of the terminal table and LaTeX
SUMMARY_PREFIX = "summary."  # extra numbers the log parsers stored in Run.summary


def column_for(key: str, sample: object = None) -> Column:
    """The column of a known key, or a plain one for an extra (summary) key."""
    known = BY_KEY.get(key)
    if known is not None:
        return known
    kind = "num" if isinstance(sample, int | float) and not isinstance(sample, bool) else "text"
    return Column(key, key, None, kind)
