"""Telemetry sources behind one small interface: `read(timeout) -> Snapshot`, never raising.

npu-smi is run as a subprocess with a hard timeout (it can take seconds, or hang when the driver is
wedged); NVIDIA is read through NVML when `nvidia-ml-py` loads (0.04 ms a query on an H200) and
through `nvidia-smi --query-gpu` otherwise (31 ms); on the CPU each rank process of a run is a card.
A probe runs in a process group of its own that a time-out kills whole (`ProbeRunner`). The command
runner is injected so tests replay real captured output without the hardware.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from zerodeck.core.telemetry import npusmi_parse, nvidia_parse
from zerodeck.core.telemetry.model import Card, HostStats, Process, Snapshot

DEFAULT_TIMEOUT = 10.0
CLI_TIMEOUT = 2.0  # `cards --once` and `doctor` answer within 3 s even when a tool hangs
MIN_PROBE_S = 0.2  # a second probe of one read is skipped when less than this is left
SOURCE_NAMES = ("npu-smi", "nvidia", "cpu")

# (argv, timeout) -> (returncode, stdout, stderr); raises FileNotFoundError / TimeoutError.
Runner = Callable[[list[str], float], tuple[int, str, str]]


class Source(Protocol):
    name: str

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot: ...


class ProbeRunner:
    """Runs probes (npu-smi, nvidia-smi) with a hard time-out, each in a session of its own.

    npu-smi is often a wrapper script around the real binary; killing only the direct child on a
    time-out left the hung grandchild behind, one more per poll. Each probe leads its own process
    group, so a time-out (or `cancel()` from a poller that is stopping) kills the whole group. A process
    stuck in the driver may not die at once, so nothing here waits on it for more than a second.
    """

    def __init__(self) -> None:
        self._live: set[subprocess.Popen[bytes]] = set()
        self._cancelled: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        with self._lock:
            self._live.add(proc)
        try:
            out, errb = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise TimeoutError(timeout) from None
        finally:
            with self._lock:
                self._live.discard(proc)
                cancelled = proc in self._cancelled
                self._cancelled.discard(proc)
        if cancelled:
            raise InterruptedError("stopped while reading")
        return proc.returncode, out.decode("utf-8", "replace"), errb.decode("utf-8", "replace")

    def cancel(self) -> None:
        """Kill every probe in flight (their reads then fail at once)."""
        with self._lock:
            live = list(self._live)
            self._cancelled.update(live)
        for proc in live:
            kill_group(proc, reap=False)


def kill_group(proc: subprocess.Popen[bytes], reap: bool = True) -> None:
    """SIGKILL the probe's whole process group. The leader is not reaped before this (communicate did
    not return), so its pid, and the group id, cannot have been reused."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            proc.kill()
    if not reap:
        return
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        proc.communicate(timeout=1.0)
    for pipe in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError):
            if pipe is not None:
                pipe.close()


def run_command(argv: list[str], timeout: float) -> tuple[int, str, str]:
    """One probe through a runner of its own (see ProbeRunner)."""
    return ProbeRunner()(argv, timeout)


def _seconds(value: float) -> str:
    return f"{value:g} s"


class Probe(NamedTuple):
    out: str | None  # stdout when the tool answered with exit status 0
    error: str | None  # else one line saying why
    timed_out: bool = False


def _probe(tool: str, runner: Runner, argv: list[str], timeout: float) -> Probe:
    try:
        code, out, errtext = runner(argv, timeout)
    except FileNotFoundError:
        return Probe(None, f"{tool}: not found on PATH")
    except PermissionError:
        return Probe(None, f"{tool}: not executable (permission denied)")
    except TimeoutError:
        return Probe(None, f"{tool}: timed out after {_seconds(timeout)}", True)
    except InterruptedError:
        return Probe(None, f"{tool}: stopped while reading")
    except OSError as exc:
        return Probe(None, f"{tool}: {exc.strerror or exc}")
    if code != 0:
        text = (out or "") + "\n" + (errtext or "")
        detail = npusmi_parse.dcmi_error(text) if tool == "npu-smi" else None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        return Probe(None, detail or f"{tool}: exited {code}" + (f": {first[:100]}" if first else ""))
    return Probe(out, None)


def _cancel(runner: Any) -> None:
    cancel = getattr(runner, "cancel", None)
    if callable(cancel):
        cancel()


def read_host() -> HostStats:
    """CPU, RAM and swap of this machine: ZeRO offload lives in host RAM."""
    try:
        import psutil

        vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        mb = 1024 * 1024
        return HostStats(cpu_pct=psutil.cpu_percent(None), cpu_count=psutil.cpu_count(),
                         ram_used_mb=round((vm.total - vm.available) / mb, 1), ram_total_mb=round(vm.total / mb, 1),
                         swap_used_mb=round(sw.used / mb, 1), swap_total_mb=round(sw.total / mb, 1))
    except Exception:  # psutil missing or /proc unreadable: NA, never an error
        return HostStats()


class NpuSmiSource:
    """`npu-smi info`, with `npu-smi info -m` read once for the logical-id mapping."""

    name = "npu-smi"

    def __init__(self, runner: Runner | None = None, binary: str = "npu-smi") -> None:
        self.runner: Runner = runner if runner is not None else ProbeRunner()
        self.binary = binary
        self._mapping: dict[tuple[int, int], int] | None = None

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        """One reading within `timeout` in all: the mapping probe gets what the table left."""
        start = time.monotonic()
        snap = Snapshot(source=self.name, t=start, wall=time.time())
        probe = _probe("npu-smi", self.runner, [self.binary, "info"], timeout)
        error = probe.error
        if probe.out is not None:
            table = npusmi_parse.parse_info(probe.out)
            snap.cards, snap.processes, snap.versions, error = (table.cards, table.processes,
                                                                table.versions, table.error)
            left = timeout - (time.monotonic() - start)
            if self._mapping is None and not error and left >= MIN_PROBE_S:
                mapped = _probe("npu-smi", self.runner, [self.binary, "info", "-m"], left)
                if not mapped.timed_out:  # a slow moment is retried at the next read
                    self._mapping = npusmi_parse.parse_map(mapped.out or "")
            if self._mapping:
                npusmi_parse.assign_logical_ids(snap.cards, self._mapping)
        snap.error = error
        snap.timed_out = probe.timed_out
        snap.duration_s = time.monotonic() - start
        return snap

    def cancel(self) -> None:
        _cancel(self.runner)


class NvidiaSource:
    """NVML when the library loads, else `nvidia-smi --query-gpu` as CSV."""

    name = "nvidia"

    def __init__(self, runner: Runner | None = None, use_nvml: bool = True) -> None:
        self.runner: Runner = runner if runner is not None else ProbeRunner()
        self._nvml: Any = None
        self.backend = "nvidia-smi"
        self.nvml_error: str | None = None
        if use_nvml:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
                self.backend = "nvml"
            except Exception as exc:  # no library, no driver, no GPU
                self.nvml_error = f"NVML: {type(exc).__name__}: {exc}"

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        start = time.monotonic()
        snap = Snapshot(source=self.name, t=start, wall=time.time())
        try:
            if self._nvml is not None:
                snap.cards, snap.processes = _nvml_read(self._nvml)
            else:
                self._smi_read(snap, timeout)
        except Exception as exc:
            snap.error = f"nvidia: {type(exc).__name__}: {exc}"
        snap.duration_s = time.monotonic() - start
        return snap

    def cancel(self) -> None:
        _cancel(self.runner)

    def _smi_read(self, snap: Snapshot, timeout: float) -> None:
        start = time.monotonic()
        argv = ["nvidia-smi", f"--query-gpu={','.join(nvidia_parse.QUERY_FIELDS)}", "--format=csv,nounits"]
        probe = _probe("nvidia-smi", self.runner, argv, timeout)
        if probe.out is None:
            snap.error, snap.timed_out = probe.error, probe.timed_out
            return
        snap.cards, snap.error = nvidia_parse.parse_csv(probe.out)
        left = timeout - (time.monotonic() - start)
        if left < MIN_PROBE_S:
            return  # the cards without their processes, rather than a read past its time-out
        argv = ["nvidia-smi", f"--query-compute-apps={','.join(nvidia_parse.APPS_FIELDS)}", "--format=csv,nounits"]
        apps = _probe("nvidia-smi", self.runner, argv, left).out
        buses = {(c.bus_id or "").upper(): c.npu for c in snap.cards if c.npu is not None}
        snap.processes = nvidia_parse.parse_apps_csv(apps or "", buses)


def _nvml_read(nv: Any) -> tuple[list[Card], list[Process]]:
    def safe(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:  # NVML_ERROR_NOT_SUPPORTED and friends: NA
            return None

    cards: list[Card] = []
    procs: list[Process] = []
    mb = 1024 * 1024
    for index in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(index)
        card = Card(npu=index, chip=0, logical_id=index)
        name = safe(lambda: nv.nvmlDeviceGetName(h))  # noqa: B023
        card.name = name.decode() if isinstance(name, bytes) else name
        mem = safe(lambda: nv.nvmlDeviceGetMemoryInfo(h))  # noqa: B023
        if mem is not None:
            card.hbm_used_mb, card.hbm_total_mb = mem.used // mb, mem.total // mb
        util = safe(lambda: nv.nvmlDeviceGetUtilizationRates(h))  # noqa: B023
        card.aicore_pct = util.gpu if util is not None else None
        card.temp_c = safe(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))  # noqa: B023
        power = safe(lambda: nv.nvmlDeviceGetPowerUsage(h))  # noqa: B023
        card.power_w = round(power / 1000, 1) if power is not None else None
        pci = safe(lambda: nv.nvmlDeviceGetPciInfo(h))  # noqa: B023
        if pci is not None:
            bus = pci.busId
            card.bus_id = bus.decode() if isinstance(bus, bytes) else bus
        cards.append(card)
        for info in safe(lambda: nv.nvmlDeviceGetComputeRunningProcesses(h)) or []:  # noqa: B023
            used = getattr(info, "usedGpuMemory", None)
            procs.append(Process(npu=index, chip=0, pid=info.pid,
                                 memory_mb=used // mb if isinstance(used, int) else None))
    return cards, procs


class CpuRankSource:
    """Each rank process of a CPU run is a card: RSS as its memory, CPU % as its utilisation.

    Ranks are the processes of the run's tree that carry a RANK / LOCAL_RANK environment variable
    (what torchrun and the deepspeed launcher set); when none does, every process of the tree whose
    parent is outside it stands in as one (`Card.rank` None): a job without ranks, or a launcher
    that has not forked its ranks yet. The launchers of ranks that have ended stand in for nothing.
    A rank's children inherit its RANK (ninja, cc1plus and sh while DeepSpeed builds an op): they
    are listed as processes of that rank, never as cards, and their memory is not the rank's (a
    compiler's 1 GiB is not the model's). With no `pids`, or when it returns None (a live view that
    follows no run), every rank process of this user is shown.
    """

    name = "cpu"

    def __init__(self, pids: Callable[[], Iterable[int] | None] | None = None) -> None:
        self.pids = pids
        self._procs: dict[int, Any] = {}
        self._launchers: set[int] = set()  # the processes above the ranks last seen

    def _candidates(self, wanted: Iterable[int] | None) -> list[Any]:
        # psutil is imported where it is used so a broken install degrades to an error on the snapshot.
        import psutil

        if wanted is not None:
            out = []
            for pid in sorted(set(wanted)):
                try:
                    out.append(self._procs.get(pid) or psutil.Process(pid))
                except psutil.Error:
                    continue
            return out
        me = os.getuid() if hasattr(os, "getuid") else None
        found = []
        for proc in psutil.process_iter(["uids"]):
            uids = proc.info.get("uids")
            if me is not None and uids is not None and uids.real != me:
                continue
            found.append(self._procs.get(proc.pid) or proc)
        return found

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        start = time.monotonic()
        snap = Snapshot(source=self.name, t=start, wall=time.time())
        try:
            import psutil
        except ImportError:
            snap.error = "cpu: psutil is not installed"
            return snap
        total_mb = round(psutil.virtual_memory().total / 2**20)
        wanted = self.pids() if self.pids is not None else None
        ranks: dict[int, int] = {}  # pid -> RANK
        procs: dict[int, Any] = {}
        for proc in self._candidates(wanted):
            rank = _rank_of(proc)
            if rank is not None or wanted is not None:
                procs[proc.pid] = proc
                if rank is not None:
                    ranks[proc.pid] = rank
        parents = {pid: _ppid(p) for pid, p in procs.items()}
        if ranks:  # a run's tree with ranks: its launcher and helpers without RANK are no cards
            self._launchers = _ancestors(ranks, parents)
            procs = {pid: p for pid, p in procs.items() if pid in ranks}
        elif self._launchers:
            # Ranks that have ended leave their launcher behind a moment: it stands in for none of them.
            self._launchers &= procs.keys()
            procs = {pid: p for pid, p in procs.items() if pid not in self._launchers}
        parents = {pid: parents[pid] for pid in procs}
        roots = sorted((pid for pid in procs if _root_of(pid, parents, ranks) == pid),
                       key=lambda pid: (ranks.get(pid, 0), pid))
        index = {pid: ranks.get(pid, i) for i, pid in enumerate(roots)}
        alive: dict[int, Any] = {}
        members: list[tuple[int, int, bool]] = sorted(
            ((index[_root_of(pid, parents, ranks)], pid, pid in index) for pid in procs),
            key=lambda m: (m[0], not m[2], m[1]))
        for rank, pid, is_root in members:
            proc = procs[pid]
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    first = proc.pid not in self._procs
                    cpu = proc.cpu_percent(None)
                    name = proc.name()
            except psutil.Error:
                continue
            alive[proc.pid] = proc
            mem = round(rss / 2**20, 1)
            if is_root:
                # psutil's first cpu_percent call has no interval to measure: NA, not 0.
                snap.cards.append(Card(npu=rank, chip=0, name=name, health="running", pid=proc.pid, logical_id=rank,
                                       aicore_pct=None if first else round(cpu, 1), memory_used_mb=mem,
                                       memory_total_mb=total_mb, rank=ranks.get(proc.pid)))
            snap.processes.append(Process(npu=rank, chip=0, pid=proc.pid, name=name, memory_mb=mem))
        self._procs = alive
        snap.duration_s = time.monotonic() - start
        return snap


def _ppid(proc: Any) -> int | None:
    try:
        return int(proc.ppid())
    except Exception:  # gone
        return None


def _ancestors(pids: Iterable[int], parents: dict[int, int | None]) -> set[int]:
    """The processes of the tree read above `pids` (the launchers of ranks), `pids` left out."""
    out: set[int] = set()
    for pid in pids:
        parent = parents.get(pid)
        while parent is not None and parent in parents and parent not in out:
            out.add(parent)
            parent = parents.get(parent)
    return out - set(pids)


def _root_of(pid: int, parents: dict[int, int | None], ranks: dict[int, int]) -> int:
    """The top-most process above `pid` in the same rank (same RANK, or any when there are no ranks)."""
    seen = {pid}
    while True:
        parent = parents.get(pid)
        if parent is None or parent not in parents or parent in seen or ranks.get(parent) != ranks.get(pid):
            return pid
        seen.add(parent)
        pid = parent


def _rank_of(proc: Any) -> int | None:
    try:
        env = proc.environ()
    except Exception:  # another user's process, or gone
        return None
    for key in ("RANK", "LOCAL_RANK"):
        value = env.get(key)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


class ReplaySource:
    """Replays captured outputs (one per read, the last repeated) through a real parser; for tests,
    `--from-*` files and benchmarks. Each item is text, or an exception the runner raises."""

    def __init__(self, name: str, outputs: list[Any], clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._outputs = list(outputs)
        self._i = 0
        self.clock = clock
        self.calls = 0

    def runner(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        if argv[-1] == "-m":
            return 0, "", ""
        self.calls += 1
        item = self._outputs[min(self._i, len(self._outputs) - 1)]
        self._i += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, tuple):
            return item
        return 0, item, ""

    def read(self, timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
        inner: Source = (NpuSmiSource(runner=self.runner) if self.name == "npu-smi"
                         else NvidiaSource(runner=self.runner, use_nvml=False))
        snap = inner.read(timeout)
        snap.t = self.clock()
        return snap


def availability() -> dict[str, str | None]:
    """Each source name -> None when usable here, else one line saying why not."""
    why: dict[str, str | None] = {}
    why["npu-smi"] = None if shutil.which("npu-smi") else "npu-smi: not found on PATH"
    nv = NvidiaSource(use_nvml=True)
    if nv.backend == "nvml" or shutil.which("nvidia-smi"):
        why["nvidia"] = None
    else:
        why["nvidia"] = f"{nv.nvml_error or 'NVML unavailable'}; nvidia-smi: not found on PATH"
    try:
        import psutil  # noqa: F401

        why["cpu"] = None
    except ImportError:
        why["cpu"] = "cpu: psutil is not installed"
    return why


def make_source(name: str | None = None, *, pids: Callable[[], Iterable[int] | None] | None = None
                ) -> Source:
    """The named source, or the first usable of npu-smi, nvidia, cpu."""
    if name is None:
        why = availability()
        name = next((n for n in SOURCE_NAMES if why.get(n) is None), "cpu")
    if name == "npu-smi":
        return NpuSmiSource()
    if name in ("nvidia", "cuda"):
        return NvidiaSource()
    return CpuRankSource(pids)
