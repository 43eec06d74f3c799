"""One polling thread per source that never overlaps itself.

`npu-smi info` takes seconds on a busy 8-card box, so a fixed 1 s timer would stack calls. The loop
reads, posts the snapshot through a callback (the newest snapshot replaces any backlog), then waits
for what is left of an interval that stretches when the source is slow (twice the last read time,
never under the 1 s target). A failed read posts the last good cards marked `stale`, with the
error, so a consumer can tell stale (old numbers), NA (None) and zero (0) apart. A source that times
out is backed off (10 s, then doubling up to 5 min, reset by a good read): while it rests, each poll
posts the host figures with the last good cards marked stale, so a hung npu-smi never stops them. The clock and the
wait are injectable so tests replay a scripted history without sleeping.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from zerodeck.core.telemetry.model import Snapshot
from zerodeck.core.telemetry.sources import DEFAULT_TIMEOUT, Source, read_host

SLOW_FACTOR = 2.0  # leave the source idle at least as long as it was busy
MAX_INTERVAL = 60.0
BACKOFF_FIRST_S = 10.0  # after a time-out the source rests this long, doubling per time-out in a row
BACKOFF_MAX_S = 300.0


def adapted_interval(target: float, took: float) -> float:
    """The next poll period: the target, stretched to twice a slow read (npu-smi can take seconds)."""
    return min(MAX_INTERVAL, max(target, took * SLOW_FACTOR))


def backoff_s(timeouts_in_a_row: int) -> float:
    """How long a source that timed out `n` times in a row is left alone: 10, 20, 40 ... 300 s."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** max(0, timeouts_in_a_row - 1))


class Poller:
    def __init__(self, source: Source, callback: Callable[[Snapshot], None], *, interval: float = 1.0,
                 timeout: float = DEFAULT_TIMEOUT, with_host: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.callback = callback
        self.target = interval
        self.interval = interval
        self.timeout = timeout
        self.with_host = with_host
        self.clock = clock
        self.last_good: Snapshot | None = None
        self.latest: Snapshot | None = None
        self.reads = 0
        self.read_time_s = 0.0
        self.timeouts = 0  # time-outs in a row
        self.resume_at: float | None = None  # while backed off: when the source is next asked
        self.last_timeout: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # poll_once from another thread never overlaps the loop

    def backed_off(self) -> bool:
        return self.resume_at is not None and self.clock() < self.resume_at

    def _read(self, timeout: float) -> tuple[Snapshot, float]:
        """The source's reading, or, while it is backed off, an empty one that says why."""
        start = self.clock()
        name = getattr(self.source, "name", "source")
        if self.resume_at is not None and start < self.resume_at:
            left = self.resume_at - start
            return Snapshot(source=name, error=f"{self.last_timeout}; next try in {left:.0f} s",
                            timed_out=True, duration_s=0.0), 0.0
        try:
            snap = self.source.read(timeout)
        except Exception as exc:  # a source bug must not end the polling
            snap = Snapshot(source=name, error=f"{name}: {type(exc).__name__}: {exc}")
        took = max(0.0, self.clock() - start)
        if snap.timed_out:
            self.timeouts += 1
            self.last_timeout = snap.error
            self.resume_at = self.clock() + backoff_s(self.timeouts)
        elif snap.error is None:
            self.timeouts, self.resume_at = 0, None
        return snap, took

    def poll_once(self, timeout: float | None = None, wait: float | None = None) -> Snapshot:
        """Read once, post the snapshot, adapt the interval; returns what was posted.

        `timeout` bounds this read (default: the poller's). `wait` bounds how long to wait for a read
        in flight in another thread; past it the snapshot carries the host figures only."""
        start = self.clock()
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            name = getattr(self.source, "name", "source")
            snap = Snapshot(source=name, t=start, error=f"{name}: a reading is still in flight", stale=True)
            if self.with_host:
                snap.host = read_host()
            if self.last_good is not None:
                snap = replace(snap, cards=self.last_good.cards, processes=self.last_good.processes)
            return snap
        try:
            snap, took = self._read(self.timeout if timeout is None else timeout)
            snap.t = start
            if snap.duration_s is None:
                snap.duration_s = took
            if self.with_host:
                snap.host = read_host()
            if snap.error is None:
                self.last_good = snap
            elif self.last_good is not None:
                snap = replace(snap, cards=self.last_good.cards, processes=self.last_good.processes, stale=True)
            self.reads += 1
            self.read_time_s += took
            # A time-out is handled by the back-off; stretching the interval too would starve the
            # host figures, which go on being read at the target rate.
            self.interval = self.target if snap.timed_out else adapted_interval(self.target, took)
            self.latest = snap
        finally:
            self._lock.release()
        with contextlib.suppress(Exception):  # a consumer bug must not end the polling either
            self.callback(snap)
        return snap

    def next_wait(self, started: float) -> float:
        return max(0.0, self.interval - (self.clock() - started))

    def run(self) -> None:
        """The polling loop, in the calling thread, until `stop()` (a UI runs it in its own worker)."""
        while not self._stop.is_set():
            started = self.clock()
            self.poll_once()
            if self._stop.wait(self.next_wait(started)):
                break

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"poller-{self.source.name}", daemon=True)
        self._thread.start()

    def stop(self, join_timeout: float | None = None) -> bool:
        """Stop the loop; waits for a read in flight up to `join_timeout` (default: the source timeout),
        then kills the probe still running (a hung npu-smi would otherwise outlive its poller).
        True when the loop has ended."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        waited = self.timeout + 2.0 if join_timeout is None else join_timeout
        thread.join(waited)
        if thread.is_alive():
            cancel = getattr(self.source, "cancel", None)
            if callable(cancel):
                with contextlib.suppress(Exception):
                    cancel()
                thread.join(1.0)
            # As good as a time-out: a closing read (the recorder's) must not ask the source again.
            name = getattr(self.source, "name", "source")
            self.timeouts += 1
            self.last_timeout = f"{name}: no answer within {waited:g} s of the stop"
            self.resume_at = self.clock() + backoff_s(self.timeouts)
        return not thread.is_alive()
