"""One polling thread per source that never overlaps itself.

`npu-smi info` takes seconds on a busy 8-card box, so a fixed 1 s timer would stack calls. The loop
reads, posts the snapshot through a callback (the newest snapshot replaces any backlog), then waits
for what is left of an interval that stretches when the source is slow (twice the last read time,
never under the 1 s target). A failed read posts the last good cards marked `stale`, with the
error, so a consumer can tell stale (old numbers), NA (None) and zero (0) apart. The clock and the
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


def adapted_interval(target: float, took: float) -> float:
    """The next poll period: the target, stretched to twice a slow read (npu-smi can take seconds)."""
    return min(MAX_INTERVAL, max(target, took * SLOW_FACTOR))


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # poll_once from another thread never overlaps the loop

    def poll_once(self) -> Snapshot:
        """Read once, post the snapshot, adapt the interval; returns what was posted."""
        with self._lock:
            start = self.clock()
            try:
                snap = self.source.read(self.timeout)
            except Exception as exc:  # a source bug must not end the polling
                snap = Snapshot(source=getattr(self.source, "name", "?"),
                                error=f"{getattr(self.source, 'name', 'source')}: {type(exc).__name__}: {exc}")
            took = max(0.0, self.clock() - start)
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
            self.interval = adapted_interval(self.target, took)
            self.latest = snap
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

    def stop(self, join_timeout: float | None = None) -> None:
        """Stop the loop; waits for a read in flight (bounded by the source timeout)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.timeout + 2.0 if join_timeout is None else join_timeout)
