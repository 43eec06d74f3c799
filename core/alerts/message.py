"""The text of an alert: what a person woken at 3 a.m. needs to decide whether to get up.

It names the run, the host and the cards, the outcome and its reason, the last step and loss, and the
command that shows the rest. Only recorded facts go in: no environment, no URLs, nothing secret.
"""

from __future__ import annotations

from typing import Any

from zerodeck.store.records import RunRecord


def compose(run: RunRecord, kind: str, detail: Any = None) -> tuple[str, str]:
    """(title, body) for a `finished`, `lost`, `stalled` or `test` alert."""
    state = "stalled" if kind == "stalled" else (run.outcome or run.status)
    title = f"zerodeck: run {run.id} {run.name} {state}"
    cards = f"{run.cards} {run.device} card{'s' if run.cards != 1 else ''}"
    lines = [f"run {run.id} {run.name} on {run.host or 'an unknown host'}, {cards}"]
    if kind == "stalled":
        summary = detail.get("summary") if isinstance(detail, dict) else None
        lines.append(f"stalled: {summary or 'no progress'}")
        for card in (detail.get("cards") or [])[:16] if isinstance(detail, dict) else []:
            lines.append(f"  card {card.get('card')}: {_mb(card.get('memory_used_mb'))} of "
                         f"{_mb(card.get('memory_total_mb'))} used, utilisation {_pct(card.get('util_pct'))}")
    else:
        lines.append(f"outcome: {state}" + (f" ({run.reason})" if run.reason else ""))
    step = f"{run.steps_done}/{run.steps_total}" if run.steps_total else f"{run.steps_done}"
    loss = f"{run.final_loss:.4g}" if run.final_loss is not None else "none yet"
    lines.append(f"last step {step if run.steps_done is not None else 'none yet'}, loss {loss}")
    if run.parent_id is not None:
        lines.append(f"resumed from run {run.parent_id}" + (f" at {run.resumed_from}" if run.resumed_from else ""))
    lines.append(f"look: zerodeck show {run.id}")
    return title, "\n".join(lines)


def _mb(value: Any) -> str:
    return f"{float(value):.0f} MB" if isinstance(value, int | float) else "?"


def _pct(value: Any) -> str:
    return f"{float(value):.0f} %" if isinstance(value, int | float) else "?"
