"""What a run leaves behind about its cards: samples from before the job starts until after it
exits, per-card peaks, the device baseline and the snapshot at the moment of failure.

The supervisor owns one RunRecorder per run. Telemetry never delays a run: `start()` waits at most
BASELINE_WAIT_S for the first reading (taken in the poller's thread) and, when the source has not
answered by then, writes a host-only baseline at once, so even a job that dies while loading the
model leaves a trace; the first reading replaces it when it lands. `stop()` waits for a read in flight
at most STOP_WAIT_S and kills a hung probe. When the card source times out it is backed off and the
host figures (RAM, CPU, swap: ZeRO offload lives there) go on being sampled. Samples are kept
downsampled in memory (series.py) and written with the peaks every minute and in `stop()`, so a
supervisor that is killed mid-run loses at most a minute. Processes on a card count
as the run's when their PID (or, inside a container, their container PID) belongs to the run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from zerodeck.core.telemetry.model import Card, Snapshot
from zerodeck.core.telemetry.poller import Poller
from zerodeck.core.telemetry.series import Point, Series
from zerodeck.core.telemetry.sources import CpuRankSource, Source, make_source, read_host
from zerodeck.store.api import RunFields, Store
from zerodeck.store.records import CardPeakRecord, SampleRecord

# A stored point covers at least this many polls (max memory, mean of the rest), which keeps even
# a short run under ~70 KB per card-hour; the live view still sees every poll.
STORE_POLLS_PER_POINT = 3
FLUSH_S = 60.0
RECORD_TIMEOUT = 5.0  # a read in the recorder's thread; npu-smi on a busy 8-card box takes seconds
BASELINE_WAIT_S = 0.5  # the most `start()` (and so the job's launch) waits for the first reading
STOP_WAIT_S = 1.0  # the most `stop()` waits for a read in flight before killing the probe
FINAL_TIMEOUT_S = 2.0  # the closing reading's own bound

_DEVICE_SOURCE = {"npu": "npu-smi", "cuda": "nvidia", "cpu": "cpu"}


class RunRecorder:
    def __init__(self, store: Store, run_id: int, device: str, pids: Callable[[], set[int]],
                 visible_devices: list[int] | None = None, interval: float = 1.0,
                 source: Source | None = None, timeout: float = RECORD_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.run_id = run_id
        self.device = device
        self.pids = pids
        self.visible = set(visible_devices) if visible_devices is not None else None
        self.clock = clock
        if source is None:
            name = _DEVICE_SOURCE.get(device, "cpu")
            source = CpuRankSource(pids) if name == "cpu" else make_source(name)
        self.source = source
        self.poller = Poller(source, self._on_snapshot, interval=interval, timeout=timeout, clock=clock)
        self.t0: float | None = None
        self.series: dict[tuple[str, str], Series] = {}
        self.peaks: dict[tuple[str, str], dict[str, Any]] = {}
        self.baseline: Snapshot | None = None
        self.last_live: Snapshot | None = None  # the newest snapshot while run processes were seen
        self.before_loss: Snapshot | None = None  # the last one before a run process first vanished
        self._live_count = 0
        self._flushed_at = clock()
        self.seen_pids: set[int] = set()  # every PID the run ever had: attribution outlives the process
        self._stand_ins: set[str] | None = set()  # CPU cards a rankless launcher filled; None once ranks came
        # For the run log's one line (summary()): the readings, their longest gap, when each card was seen.
        self._reads = 0
        self._last_read: float | None = None
        self._longest_gap = 0.0
        self._card_seen: dict[str, tuple[float, float, int | None]] = {}  # key -> first t, last t, pid
        self._latest: Snapshot | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._first = threading.Event()  # the first reading has been posted
        self._baseline_lock = threading.Lock()
        self._baseline_final = False

    # -- the interface the supervisor calls --------------------------------------------------------
    def start(self) -> None:
        """Start polling; returns within BASELINE_WAIT_S whatever the source does."""
        self.t0 = self.clock()
        self.poller.start()
        if not self._first.wait(BASELINE_WAIT_S):
            name = getattr(self.source, "name", "source")
            snap = Snapshot(source=name, t=self.clock(), wall=time.time(), host=read_host(),
                            error=f"{name}: no reading within {BASELINE_WAIT_S:g} s of the launch; "
                                  "this baseline has the host figures only")
            self._set_baseline(snap, final=False)

    def _set_baseline(self, snap: Snapshot, final: bool) -> None:
        """The first reading is the baseline; a provisional one (host only) stands until it lands."""
        with self._baseline_lock:
            if self._baseline_final:
                return
            self._baseline_final = final
            self.baseline = snap
            data = self._annotate(snap)
        with contextlib.suppress(Exception):  # a failed write must not stop the polling thread
            self.store.update_run(self.run_id, baseline=data)

    def stop(self, failed: bool) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.poller.stop(join_timeout=STOP_WAIT_S)
        final = self.poller.poll_once(timeout=min(FINAL_TIMEOUT_S, self.poller.timeout), wait=0.2)
        fields: RunFields = {}
        if failed:
            moment = self.before_loss or self.last_live or final
            data = self._annotate(moment)
            data["after_exit"] = self._annotate(final)
            fields["failure_snapshot"] = data
        device_peaks = [p["peak_mb"] for (src, _), p in self.peaks.items()
                        if src not in ("host", "swap") and p["peak_mb"] is not None]
        if device_peaks:
            fields["measured_peak_gib"] = round(max(device_peaks) / 1024, 3)
        self._write_samples()
        self.store.update_run(self.run_id, **fields)

    def latest(self) -> Snapshot | None:
        return self._latest

    def run_cards(self) -> list[Card]:
        """The run's cards in the newest reading (the stall watchdog's sign of life and snapshot)."""
        snap = self._latest
        return self._cards(snap) if snap is not None else []

    # -- sampling ---------------------------------------------------------------------------------
    def _cards(self, snap: Snapshot) -> list[Card]:
        if self.visible is None or snap.source == "cpu":
            return snap.cards
        return [c for c in snap.cards if c.logical_id in self.visible]

    def _run_pids(self) -> set[int]:
        try:
            now = set(self.pids())
        except Exception:
            now = set()
        self.seen_pids |= now
        return now

    def _on_snapshot(self, snap: Snapshot) -> None:
        self._latest = snap
        if not self._first.is_set():
            self._set_baseline(snap, final=True)
            self._first.set()
        t = snap.t - (self.t0 if self.t0 is not None else snap.t)
        with self._lock:
            if snap.host is not None:  # the host is read even when the card source failed
                h = snap.host
                self._add("host", "host", t, h.ram_used_mb, h.ram_total_mb, h.cpu_pct, None, None)
                self._add("swap", "swap", t, h.swap_used_mb, h.swap_total_mb, None, None, None)
        if snap.stale or snap.error:
            self._checkpoint(snap.t)
            return  # old card numbers are not new samples
        run_pids = self._run_pids()
        with self._lock:
            self._reads += 1
            if self._last_read is not None:
                self._longest_gap = max(self._longest_gap, t - self._last_read)
            self._last_read = t
            if snap.source == "cpu":
                self._drop_stand_ins(snap.cards)
            for card in self._cards(snap):
                first = self._card_seen.get(card.key, (t, t, None))[0]
                self._card_seen[card.key] = (first, t, card.pid)
                self._add(snap.source, card.key, t, card.device_used_mb, card.device_total_mb,
                          card.aicore_pct, card.power_w, card.temp_c)
            count = len(snap.cards) if snap.source == "cpu" else sum(
                1 for p in snap.processes if p.pid in run_pids or p.container_pid in run_pids)
            if count < self._live_count and self.before_loss is None:
                # The first rank to go is usually the one that failed: keep the view just before.
                self.before_loss = self.last_live
            if count:
                self.last_live = snap
            self._live_count = count
        self._checkpoint(snap.t)

    def summary(self) -> str:
        """One line for the run log: how often the cards were read and when each was seen (a CPU rank by
        its PID), so a card missing from the record tells a sampler that never caught it from one that
        caught it and lost it."""
        with self._lock:
            seen = ", ".join(f"{key}{f' (pid {pid})' if pid is not None else ''} {a:.1f}-{b:.1f} s"
                             for key, (a, b, pid) in self._card_seen.items())
            return (f"{self._reads} card reading(s), longest gap {self._longest_gap:.1f} s; "
                    f"cards seen: {seen or 'none'}")

    def _drop_stand_ins(self, cards: list[Card]) -> None:
        """Until a CPU run's launcher forks its ranks, the launcher stands in as card 0 (a job without
        ranks has no other cards). When the first rank appears, what the stand-in recorded is dropped:
        the launcher's memory is not rank 0's, neither as its peak nor as its baseline."""
        if self._stand_ins is None:
            return
        if any(c.rank is not None for c in cards):
            for key in self._stand_ins:
                self.series.pop(("cpu", key), None)
                self.peaks.pop(("cpu", key), None)
                self._card_seen.pop(key, None)
            self._stand_ins = None
        else:
            self._stand_ins.update(c.key for c in cards)

    def _add(self, source: str, card: str, t: float, used: Any, total: Any, util: Any, power: Any,
             temp: Any) -> None:
        key = (source, card)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(width=max(self.poller.target * STORE_POLLS_PER_POINT, 1e-3))
        series.add(Point(t=round(t, 3), memory_used_mb=used, memory_total_mb=total, util_pct=util,
                         power_w=power, temp_c=temp))
        peak = self.peaks.get(key)
        if peak is None:
            peak = self.peaks[key] = {"peak_mb": None, "baseline_mb": used, "total_mb": total}
        if used is not None and (peak["peak_mb"] is None or used > peak["peak_mb"]):
            peak["peak_mb"] = used
        if total is not None:
            peak["total_mb"] = total

    def _annotate(self, snap: Snapshot) -> dict[str, Any]:
        data = snap.to_json()
        self._run_pids()
        run_pids = self.seen_pids
        for proc in data["processes"]:
            proc["in_run"] = proc["pid"] in run_pids or proc.get("container_pid") in run_pids
        if self.visible is not None:
            data["visible_devices"] = sorted(self.visible)
        return data

    # -- the store --------------------------------------------------------------------------------
    def _write_samples(self) -> None:
        """Replace this run's samples and card peaks with the current series and peaks.

        A replace, not an append: the series merges old buckets as it grows, so the stored points
        of a minute ago may no longer exist. The series is bounded, so the write is too."""
        with self._lock:
            samples = [SampleRecord(t=p.t, source=source, card=card, memory_used_mb=p.memory_used_mb,
                                    memory_total_mb=p.memory_total_mb, util_pct=p.util_pct, power_w=p.power_w,
                                    temp_c=p.temp_c)
                       for (source, card), series in self.series.items() for p in series.points]
            peaks = [CardPeakRecord(source=source, card=card, **peak) for (source, card), peak in self.peaks.items()]
        self.store.replace_telemetry(self.run_id, samples, peaks)

    def _checkpoint(self, now: float) -> None:
        """Samples and peaks reach the store every FLUSH_S while the run goes, so a supervisor
        killed mid-run still leaves them; a failed write is retried at the next checkpoint."""
        if self._stopped or now - self._flushed_at < FLUSH_S:
            return
        self._flushed_at = now
        with contextlib.suppress(Exception):
            self._write_samples()
