"""A store that blinks loses nothing: the supervisor's writes, buffered on local disk while the
database cannot be reached, and written in order when it is back.

The supervisor writes through a `SpooledStore` (ARCHITECTURE.md, "Where each responsibility
lives": supervisor). A write the store refuses because it cannot be reached right now
(`StoreUnreachable`: the server is down or the connection dropped; `StoreBusy`: SQLite's lock held
past its timeout) is appended to `store-spool.jsonl` in the run directory, one JSON line per write,
and the job goes on. Once anything is buffered every later write goes behind it, so the database
sees the writes in the order the supervisor made them, and the final record (state changes, metric
points, telemetry, events, outcome) is the one it would have been with no outage. Retries back
off from BACKOFF_FIRST_S to BACKOFF_MAX_S, so a dead server is not hammered and a server that is back
is noticed within seconds.

Every other error passes through untouched and is never buffered: a write refused because the
run's lease was taken over (`LeaseLost`) means "stop writing", not "try later".

Replay is safe to repeat: after each write lands an `{"applied": SEQ}` line is appended; a crash
between the two re-applies one write, and every buffered write is idempotent (columns set to
values, points upserted by step, telemetry replaced whole; an event is looked for before it is
added again). Times a write would take from the clock (a run's end, an event's time) are fixed
when it is made, not when it lands. A torn last line (the process died while appending) is cut
off. A supervisor started on a run directory with a spool left behind (restarted, adopted, or the
reconciler concluding the run) replays it before its own writes land, because they queue behind it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session
from typing_extensions import Unpack
from zerodeck.store.api import FinishFields, RunFields, Store
from zerodeck.store.errors import StoreBusy, StoreUnreachable
from zerodeck.store.models import utcnow
from zerodeck.store.records import CardPeakRecord, RunRecord, SampleRecord

SPOOL_FILE = "store-spool.jsonl"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
SYNC_EVERY_S = 1.0  # points and progress are fsync'd at most this often; state changes at once
# Errors that mean "not now": the write is buffered and retried. Anything else is raised.
TRANSIENT: tuple[type[Exception], ...] = (StoreUnreachable, StoreBusy)
_SAME_EVENT = timedelta(milliseconds=1)
_STREAM = ("update_run", "upsert_metrics")  # the writes of a run in progress, merged on replay

__all__ = ["SPOOL_FILE", "SpooledStore", "TRANSIENT"]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$dt" in obj:
        return datetime.fromisoformat(obj["$dt"])
    return obj


class SpooledStore(Store):
    """The run's store as its supervisor sees it: writes that cannot land now are kept on disk.

    `writer` is what buffered writes are applied to (default: the store itself); a writer that
    carries the run's claim token can stand there, so a replayed write is fenced like a direct one.
    """

    def __init__(self, inner: Store, path: Path, *, writer: Any = None,
                 note: Callable[[str], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(inner.engine, inner.url)
        self.inner = inner
        self.writer = writer if writer is not None else inner
        self.path = path
        self.note = note or (lambda _message: None)
        self.monotonic = monotonic
        self.sleep = sleep
        self._lock = threading.RLock()
        self._pending: list[dict[str, Any]] = []
        self._seq = 0
        self._down_since: float | None = None  # monotonic time of the first failure of this outage
        self._retry_at = 0.0
        self._delay = BACKOFF_FIRST_S
        self._synced_at = float("-inf")
        self._runs: dict[int, RunRecord] = {}
        self._stop_seen: dict[int, bool] = {}
        self.buffered = 0  # writes this process had to buffer
        self._load()

    # Every other method of Store runs on the inner store's sessions: a store that checks each
    # write (the claim token's fencing) checks the ones made through here too.
    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        with self.inner._session() as session:
            yield session

    def _rows(self, query: Any) -> list[Any]:
        return self.inner._rows(query)

    # -- state -----------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Writes on disk not yet in the database."""
        return len(self._pending)

    @property
    def reachable(self) -> bool:
        return self._down_since is None

    def remember(self, run: RunRecord) -> None:
        """The run as last read: what `run()` answers while the store cannot be reached."""
        self._runs[run.id] = run

    # -- writes (each one lands now, or is buffered behind the ones before it) --------------------
    def update_run(self, run_id: int, **fields: Unpack[RunFields]) -> None:
        if not fields:
            return
        self._write("update_run", [run_id], dict(fields), durable="status" in fields)

    def finish_run(self, run_id: int, outcome: str, reason: str | None = None,
                   **fields: Unpack[FinishFields]) -> None:
        fields.setdefault("ended_at", utcnow())  # when it ended, not when the record lands
        self._write("finish_run", [run_id, outcome, reason], dict(fields), durable=True)

    def upsert_metrics(self, run_id: int, points: Sequence[dict[str, Any]]) -> None:
        if points:
            self._write("upsert_metrics", [run_id, [dict(p) for p in points]], {}, durable=False)

    def replace_telemetry(self, run_id: int, samples: Sequence[SampleRecord],
                          peaks: Sequence[CardPeakRecord]) -> None:
        self._write("replace_telemetry", [run_id, [asdict(x) for x in samples], [asdict(p) for p in peaks]], {},
                    durable=False)

    def add_event(self, run_id: int, kind: str, detail: Any = None, *, at: datetime | None = None) -> None:
        self._write("add_event", [run_id, kind, json.loads(json.dumps(detail, default=str))],
                    {"at": at or utcnow()}, durable=True)

    # -- reads the supervisor needs during an outage ---------------------------------------------
    def stop_requested(self, run_id: int) -> bool:
        """The stored stop request; while the store is away, the last answer (a stop asked by
        signal still works: the supervisor checks that first)."""
        if not self._ready():
            return self._stop_seen.get(run_id, False)
        try:
            answer = self.inner.stop_requested(run_id)
        except TRANSIENT as exc:
            self._failed(exc)
            return self._stop_seen.get(run_id, False)
        self._stop_seen[run_id] = answer
        return answer

    def run(self, run_id: int) -> RunRecord | None:
        if self._ready():
            try:
                found = self.inner.run(run_id)
            except TRANSIENT as exc:
                self._failed(exc)
            else:
                if found is not None:
                    self._runs[run_id] = found
                return found
        return self._runs.get(run_id)

    def card_peaks(self, run_id: int) -> list[CardPeakRecord]:
        """The stored peaks; while the store is away, the ones last buffered (else none)."""
        if self._ready():
            try:
                return self.inner.card_peaks(run_id)
            except TRANSIENT as exc:
                self._failed(exc)
        with self._lock:  # the recorder's thread may be appending
            for entry in reversed(self._pending):
                if entry["op"] == "replace_telemetry" and entry["args"][0] == run_id:
                    return [CardPeakRecord(**p) for p in entry["args"][2]]
        return []

    # -- draining --------------------------------------------------------------------------------
    def drain(self) -> bool:
        """Write what is buffered if a retry is due; True when nothing is left buffered."""
        self._ready()
        return not self._pending

    def settle(self, timeout: float | None = None, should_stop: Callable[[], bool] | None = None) -> bool:
        """Wait, retrying with backoff, until everything buffered is in the database (or `timeout`
        passes, or `should_stop()`); True when nothing is left buffered."""
        deadline = None if timeout is None else self.monotonic() + timeout
        while not self.drain():
            if (deadline is not None and self.monotonic() >= deadline) or (should_stop and should_stop()):
                return False
            self.sleep(max(0.05, min(self._retry_at - self.monotonic(), BACKOFF_MAX_S)))
        return True

    def _ready(self) -> bool:
        """Replay what is buffered when a retry is due; True when the store may be asked directly."""
        with self._lock:
            if self._down_since is not None and self.monotonic() < self._retry_at:
                return False
            if not self._pending:
                return True
            try:
                self._replay()
            except TRANSIENT as exc:
                self._failed(exc)
                return False
            return True

    def _write(self, op: str, args: list[Any], kwargs: dict[str, Any], *, durable: bool) -> None:
        with self._lock:
            if not self._pending and self._down_since is None:
                try:
                    self._apply(op, args, kwargs)
                    return
                except TRANSIENT as exc:
                    self._failed(exc)
            self._append({"op": op, "args": args, "kwargs": kwargs}, durable)
            self._ready()

    def _failed(self, exc: Exception) -> None:
        now = self.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._delay = BACKOFF_FIRST_S
            self.note(f"{exc}; the run goes on, its records are kept in {self.path.name}")
        else:
            self._delay = min(self._delay * 2, BACKOFF_MAX_S)
        self._retry_at = now + self._delay

    def _replay(self) -> None:
        started = self.monotonic()
        writes = statements = 0
        while self._pending:
            taken, calls = self._next_batch()
            for op, args, kwargs in calls:
                self._apply(op, args, kwargs)
            statements += len(calls)
            self._mark(self._pending[taken - 1]["seq"])
            del self._pending[:taken]
            writes += taken
        self._close_file()
        if self._down_since is not None:
            away = started - self._down_since
            self.note(f"store reachable again after {away:.0f} s: {writes} buffered writes replayed as "
                      f"{statements} in {self.monotonic() - started:.1f} s")
        else:
            self.note(f"{writes} writes left in {self.path.name} by an earlier supervisor replayed")
        self._down_since = None
        self._delay = BACKOFF_FIRST_S

    def _next_batch(self) -> tuple[int, list[tuple[str, list[Any], dict[str, Any]]]]:
        """How many buffered writes to take next, and the calls that write them. A stretch of one
        run's progress updates and metric points (what a supervisor writes every second) becomes one
        upsert of all the points and one update with the last value of each column: the final state
        is the same (points and run columns live in different tables; a later value wins, as it would
        have), so an hour's outage lands in a few statements. A telemetry replace that a later one
        replaces anyway is skipped. Anything else (state changes are updates too, but an event or
        the end breaks the stretch) is written on its own, in order."""
        first = self._pending[0]
        op, run_id = first["op"], first["args"][0]
        if op == "replace_telemetry":
            later = any(e["op"] == op and e["args"][0] == run_id for e in self._pending[1:])
            return 1, [] if later else [(op, first["args"], first["kwargs"])]
        if op not in _STREAM:
            return 1, [(op, first["args"], first["kwargs"])]
        fields: dict[str, Any] = {}
        points: list[dict[str, Any]] = []
        count = 0
        for entry in self._pending:
            if entry["op"] not in _STREAM or entry["args"][0] != run_id:
                break
            count += 1
            if entry["op"] == "update_run":
                fields.update(entry["kwargs"])
            else:
                points.extend(entry["args"][1])
        calls: list[tuple[str, list[Any], dict[str, Any]]] = []
        if points:
            calls.append(("upsert_metrics", [run_id, points], {}))
        if fields:
            calls.append(("update_run", [run_id], fields))
        return count, calls

    def _apply(self, op: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        target = self.writer
        if op == "update_run":
            target.update_run(args[0], **kwargs)
        elif op == "finish_run":
            target.finish_run(args[0], args[1], args[2], **kwargs)
        elif op == "upsert_metrics":
            target.upsert_metrics(args[0], args[1])
        elif op == "replace_telemetry":
            target.replace_telemetry(args[0], [SampleRecord(**x) for x in args[1]],
                                     [CardPeakRecord(**p) for p in args[2]])
        elif op == "add_event":
            at = kwargs["at"]
            if self._pending and any(abs(e.at - at) < _SAME_EVENT and e.kind == args[1]
                                     for e in self.inner.events(args[0], kinds=[args[1]])):
                return  # it landed before the process that buffered it could say so
            target.add_event(args[0], args[1], args[2], at=at)
        else:
            raise ValueError(f"{self.path}: unknown spooled write {op!r}")

    # -- the file --------------------------------------------------------------------------------
    def _load(self) -> None:
        """Read a spool left behind: the writes after the last one marked applied; a torn last line
        (its writer died mid-append) is cut off so the next append starts on a line of its own."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
            data = data[:end]
        entries: list[dict[str, Any]] = []
        applied = 0
        for line in data.splitlines():
            try:
                item = json.loads(line, object_hook=_decode)
            except ValueError:
                continue  # only a torn line can fail to parse, and it was cut off above
            if "applied" in item:
                applied = max(applied, int(item["applied"]))
            elif "seq" in item:
                entries.append(item)
                self._seq = max(self._seq, int(item["seq"]))
        self._pending = [e for e in entries if e["seq"] > applied]
        if not self._pending:
            self._close_file()

    def _append(self, entry: dict[str, Any], durable: bool) -> None:
        self._seq += 1
        entry = {"seq": self._seq, **entry}
        line = json.dumps(entry, default=_encode, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            now = self.monotonic()
            if durable or now - self._synced_at >= SYNC_EVERY_S:
                os.fsync(fh.fileno())
                self._synced_at = now
        self._pending.append(entry)
        self.buffered += 1

    def _mark(self, seq: int) -> None:
        # Not fsync'd: a mark lost in a crash makes one write land twice, which it may.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"applied": seq}) + "\n")

    def _close_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
