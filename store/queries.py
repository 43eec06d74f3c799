"""The store's read and write operations, as plain functions over a Session.

Writers commit their own small transactions so a crash of one process never leaves another
waiting on a lock; readers return ORM rows that callers turn into plain objects before handing
them to a UI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select
from zerodeck.store.models import MetricPoint, QueueItem, RecipeSnapshot, Run, utcnow


def save_snapshot(session: Session, *, hash: str, name: str, toml: str, source_path: str | None) -> RecipeSnapshot:
    snap = session.get(RecipeSnapshot, hash)
    if snap is None:
        snap = RecipeSnapshot(hash=hash, name=name, toml=toml, source_path=source_path)
        session.add(snap)
        session.commit()
    return snap


def add_run(session: Session, run: Run) -> Run:
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def update_run(session: Session, run_id: int, **fields: Any) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise KeyError(run_id)
    for key, value in fields.items():
        if key in ("argv", "env", "rendered", "versions", "summary", "baseline", "failure_snapshot",
                   "tags", "attempts_log") and not isinstance(value, str):
            value = json.dumps(value, default=str)
        setattr(run, key, value)
    session.add(run)
    session.commit()
    session.refresh(run)
    return run


def list_runs(session: Session, *, limit: int | None = None, status: str | None = None,
              ids: Sequence[int] | None = None) -> list[Run]:
    q = select(Run).order_by(col(Run.id).desc())
    if status:
        q = q.where(Run.status == status)
    if ids:
        q = q.where(col(Run.id).in_(list(ids)))
    if limit:
        q = q.limit(limit)
    return list(session.exec(q))


def add_metrics(session: Session, run_id: int, points: Sequence[dict[str, Any]]) -> None:
    for p in points:
        session.add(MetricPoint(run_id=run_id, **p))
    session.commit()


def metrics(session: Session, run_id: int) -> list[MetricPoint]:
    q = select(MetricPoint).where(MetricPoint.run_id == run_id).order_by(col(MetricPoint.step))
    return list(session.exec(q))


def enqueue(session: Session, recipe_ref: str, recipe_hash: str | None = None) -> QueueItem:
    item = QueueItem(recipe_ref=recipe_ref, recipe_hash=recipe_hash)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


def queue_items(session: Session, *, states: Sequence[str] | None = None) -> list[QueueItem]:
    q = select(QueueItem).order_by(col(QueueItem.id))
    if states:
        q = q.where(col(QueueItem.state).in_(list(states)))
    return list(session.exec(q))


def claim_next(session: Session) -> QueueItem | None:
    """Mark the oldest pending item running, atomically (UPDATE ... WHERE state='pending')."""
    from sqlalchemy import update

    while True:
        item = session.exec(
            select(QueueItem).where(QueueItem.state == "pending").order_by(col(QueueItem.id)).limit(1)
        ).first()
        if item is None:
            return None
        res = session.execute(
            update(QueueItem)
            .where(col(QueueItem.id) == item.id, col(QueueItem.state) == "pending")
            .values(state="running", started_at=utcnow())
        )
        session.commit()
        if res.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(item)
            return item


def update_queue_item(session: Session, item_id: int, **fields: Any) -> QueueItem:
    item = session.get(QueueItem, item_id)
    if item is None:
        raise KeyError(item_id)
    for key, value in fields.items():
        setattr(item, key, value)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


def upsert_metrics(session: Session, run_id: int, points: Sequence[dict[str, Any]]) -> None:
    """Insert points, or update the one already stored for the same step (parsers report a step
    again when a later line adds columns to it)."""
    columns = set(MetricPoint.model_fields) - {"id", "run_id"}
    for p in points:
        values = {k: v for k, v in p.items() if k in columns}
        existing = session.exec(
            select(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.step == values.get("step"))
        ).first()
        if existing is None:
            session.add(MetricPoint(run_id=run_id, **values))
        else:
            for k, v in values.items():
                if v is not None:
                    setattr(existing, k, v)
            session.add(existing)
    session.commit()
