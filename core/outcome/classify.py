"""Why a training run ended, from its exit status and the signatures in its log.

The launchers hide the cause: torchrun exits 1 whatever happened, the DeepSpeed launcher prints the
argv of the *last* rank it reaped rather than the failing one, and a rank killed by the kernel's OOM
killer shows up on the surviving ranks as a gloo/NCCL "connection closed by peer". So the exit code
alone is never enough, and the log alone is not either (an HF `auto_find_batch_size` run logs a CUDA
OOM and then succeeds). This module weighs both, in a fixed order.

Precedence (first rule that applies wins):

1. `stopped_by_user`            -> killed (the supervisor knows it sent the signal).
2. `exit_code == 0`             -> succeeded (a caught OOM or a scary warning in the log does not
                                   turn a clean exit into a failure).
3. device out of memory         -> oom, device cuda|npu|cpu (CUDA/NPU allocator messages, EL0004,
                                   "Failed to allocate memory"); the first one in the log.
4. a rank SIGKILLed             -> oom, device host, code "-9" (DeepSpeed `return code = -9`,
                                   torchrun Root Cause `exitcode : -9`, exit status -9/137/247).
                                   Ranked above comm errors: the survivors' "connection closed by
                                   peer" is the consequence, the killed rank the cause.
5. SIGTERM / SIGINT / SIGHUP    -> killed (launcher "received SIGTERM", torchrun "death signal",
                                   KeyboardInterrupt, torchrun Root Cause -15/-2, exit 130/143/-15/-2).
                                   Above comm errors: ranks torn down by Ctrl+C report broken pipes.
6. collective communication     -> comm_error, device npu (HCCL, EI codes), cuda (NCCL), cpu (gloo);
                                   the first one in the log.
7. other Ascend runtime errors  -> failed, device npu, code (EE9999, EH9999, dcmi ..., else the ACL
                                   return value or ERR00100): E-codes first, then torch_npu's
                                   `NPU function error` / `call aclnn... failed` / `ERR00100 PTA`, the
                                   `RTS_HWTS` exception dump and `aicore exception`.
8. a Python traceback           -> failed; reason is the last exception line that is not a launcher
                                   wrapper (ChildFailedError, CalledProcessError), preferring the
                                   root-cause rank's own.
9. anything else non-zero       -> failed with the exit status.

With no exit status (a log read on its own), a completion marker (`exits successfully`, the HF
`train_runtime` dict or `***** train metrics *****`, ms-swift's `End time of running main`, zerodeck's
`done` line) that comes *after* the last failure signature means succeeded; no marker and no
signature means the log cannot tell: outcome None (JSON `null`), reason "no error and no completion
in the log" (it was cut short, or the run is still going). Only an exit status or an error makes it
`failed`.

A long log is read as its first 64 KiB and its last 8 MiB (`HEAD_CHARS`, `TAIL_CHARS`): the evidence
of a crash is at the end (ranks blocked on a dead peer print nothing more) and this keeps a 50 MB
log well under a second; `diagnose_file` reads only those parts from disk.

The failing rank comes from torchrun's Root Cause block when there is one, else from the evidence
line itself (`[rankN]:`, `[Rank N]`, `Rank[N]`, `RankID:N`), else from the nearest `[rankN]:` prefix
just above it. The DeepSpeed launcher's `--local_rank=N` is ignored (it is the last rank reaped),
except when it started a single rank.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zerodeck.core.outcome import signatures as sig

OUTCOMES = ("succeeded", "oom", "comm_error", "failed", "killed")
HOST_OOM_EXIT = {-9, 137, 247}  # SIGKILL as seen raw, through a shell (128+9), through deepspeed (256-9)
# SIGTERM / SIGINT / SIGHUP: raw, through a shell (128+n), through deepspeed (256-n).
SIGNAL_EXIT = {-15: 15, -2: 2, -1: 1, 143: 15, 130: 2, 129: 1, 241: 15, 254: 2}
# A long log is read as its first HEAD_CHARS and last TAIL_CHARS: a crash's evidence sits at the end
# (ranks blocked on a dead peer print nothing more), and scanning 50 MB in full would take seconds.
HEAD_CHARS = 64 * 1024
TAIL_CHARS = 8 * 1024 * 1024
EXCERPT_BEFORE = 2
EXCERPT_AFTER = 4
MAX_LINE = 300


@dataclass(frozen=True)
class Diagnosis:
    outcome: str | None  # None: a bare log showing neither an error nor a completion
    device: str | None
    code: str | None
    rank: int | None
    excerpt: str
    reason: str
    transient: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `zerodeck diagnose --json` contract (ARCHITECTURE.md, "Contracts") plus `reason` and `transient`."""
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    signature: sig.Signature
    start: int
    end: int
    match: re.Match[str]

    @property
    def kind(self) -> str:
        return self.signature.kind


class _Log:
    """The log text with cheap position -> line helpers (no full split: logs can be 50 MB)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def line_at(self, pos: int) -> tuple[int, int]:
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        return start, (len(self.text) if end < 0 else end)

    def line(self, pos: int) -> str:
        start, end = self.line_at(pos)
        return self.text[start:end]

    def lines_before(self, pos: int, count: int) -> Iterator[str]:
        """The `count` lines above the line holding `pos`, nearest first."""
        start, _ = self.line_at(pos)
        for _ in range(count):
            if start <= 0:
                return
            prev_start, prev_end = self.line_at(start - 1)
            yield self.text[prev_start:prev_end]
            start = prev_start

    def excerpt(self, pos: int, before: int = EXCERPT_BEFORE, after: int = EXCERPT_AFTER) -> str:
        start, end = self.line_at(pos)
        for _ in range(before):
            if start <= 0:
                break
            start = self.line_at(start - 1)[0]
        for _ in range(after):
            if end >= len(self.text):
                break
            end = self.line_at(end + 1)[1]
        lines = self.text[start:end].split("\n")
        return "\n".join(_clip(line) for line in lines).strip("\n")


def _clip(line: str) -> str:
    line = line.rstrip("\r")
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def scan(text: str, kinds: tuple[str, ...] | None = None) -> list[Hit]:
    """Every signature hit in the log (of the given kinds), in log order."""
    wanted = [s for s in sig.SIGNATURES if kinds is None or s.kind in kinds]
    hits = [Hit(s, m.start(), m.end(), m) for s in wanted for m in s.pattern.finditer(text)
            if not s.line_start or _only_prefix_before(text, m.start())]
    hits.sort(key=lambda h: h.start)
    return hits


def _only_prefix_before(text: str, pos: int) -> bool:
    start = text.rfind("\n", 0, pos) + 1
    return sig.LINE_PREFIX_ONLY.fullmatch(text, start, pos) is not None


@dataclass(frozen=True)
class _RootCause:
    rank: int
    exit: int
    start: int


def _root_cause(text: str) -> _RootCause | None:
    found = None
    for m in sig.ROOT_CAUSE.finditer(text):
        found = _RootCause(int(m.group("rank")), int(m.group("exit")), m.start())
    return found


def _rank_in(line: str) -> int | None:
    for pattern in sig.RANK_PATTERNS:
        m = pattern.search(line)
        if m:
            return int(m.group(1))
    return None


def _rank_near(log: _Log, pos: int, look_ahead: int = 0) -> int | None:
    """The rank the evidence line names; else a `[rankN]:` prefix or `Rank[N] failed` just above;
    else (`look_ahead` lines) a rank named in the rest of the same message block."""
    rank = _rank_in(log.line(pos))
    if rank is not None:
        return rank
    for line in log.lines_before(pos, 20):
        m = sig.RANK_PREFIX.search(line) or sig.RANK_FAILED.search(line)
        if m:
            return int(m.group(1))
    _, end = log.line_at(pos)
    for _ in range(look_ahead):
        if end >= len(log.text):
            break
        start, end = log.line_at(end + 1)
        rank = _rank_in(log.text[start:end])
        if rank is not None:
            return rank
    return None


def _richest(log: _Log, hits: list[Hit], first: Hit) -> str:
    """The most telling line among the first few hits of the same signature: Ascend prints
    `EI9999: Inner Error!` before the line that says what went wrong."""
    same = [h for h in hits if h.signature is first.signature][:10]
    return max((_clean(log.line(h.start)) for h in same), key=len)


def _clean(line: str) -> str:
    """One readable line: drop progress bars, rank prefixes, torch and vLLM log headers."""
    line = sig.REASON_PREFIX.sub("", line.split("]:", 1)[1] if sig.RANK_PREFIX.search(line) else line)
    return _one_line(sig.REASON_PREFIX.sub("", line.strip()).strip())


def _signal_of(hit: Hit) -> int | None:
    name = hit.signature.name
    if name == "ds_main_sigterm":
        return sig.SIGNAL_NUMBERS.get(hit.match.group(1), 15)
    if name in ("torchrun_death_signal", "signal_exception"):
        return int(hit.match.group(1))
    if name == "keyboard_interrupt":
        return 2
    return None


def _first(hits: list[Hit], kind: str) -> Hit | None:
    return next((h for h in hits if h.kind == kind), None)


def _last_failure_pos(hits: list[Hit], root: _RootCause | None, exc_pos: int | None) -> int:
    positions = [h.start for h in hits if h.kind not in ("success",)]
    if root is not None and root.exit != 0:
        positions.append(root.start)
    if exc_pos is not None:
        positions.append(exc_pos)
    return max(positions, default=-1)


def _exceptions(text: str) -> list[re.Match[str]]:
    """Exception lines, looked for only below a `Traceback` header (and in the last 64 KiB, for
    excerpts that start mid-traceback): a line-anchored regex over the whole log is the slow part."""
    regions: list[tuple[int, int]] = [(max(0, len(text) - 65536), len(text))]
    pos = text.rfind("Traceback (most recent call last)")
    while pos >= 0 and len(regions) <= 200:
        regions.append((pos, min(len(text), pos + 512 * 1024)))
        pos = text.rfind("Traceback (most recent call last)", 0, pos)
    merged: list[list[int]] = []
    for start, end in sorted(regions):
        start = text.rfind("\n", 0, start) + 1
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [m for start, end in merged for m in sig.EXCEPTION_LINE.finditer(text, start, end)]


def _pick_exception(excs: list[re.Match[str]], rank: int | None) -> re.Match[str] | None:
    """The last exception that is not a launcher wrapper, the root-cause rank's own if it printed one."""
    real = [m for m in excs if not m.group("exc").endswith(sig.WRAPPER_EXCEPTIONS)]
    if rank is not None:
        own = [m for m in real if m.group("rank") is not None and int(m.group("rank")) == rank]
        if own:
            return own[-1]
    if real:
        last = real[-1]
        # Every rank often dies of the same error: report the first rank that printed it.
        same = [m for m in real if (m.group("exc"), m.group("msg")) == (last.group("exc"), last.group("msg"))]
        return same[0]
    return excs[-1] if excs else None


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ds_single_rank(text: str) -> bool:
    m = sig.DS_WORLD_SIZE.search(text)
    return m is not None and m.group(1) == "1"


def _window(text: str) -> str:
    """The part of a long log that is read: its head (launcher set-up) and its tail (the ending)."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS + 4096:
        return text
    tail_start = text.find("\n", len(text) - TAIL_CHARS) + 1
    head_end = text.rfind("\n", 0, HEAD_CHARS) + 1
    skipped = tail_start - head_end
    return text[:head_end] + f"[... {skipped} characters not scanned ...]\n" + text[tail_start:]


TEARDOWN_ABORT = "terminate called without an active exception"


def diagnose(text: str, exit_code: int | None = None, stopped_by_user: bool = False) -> Diagnosis:
    """Classify one run's ending; see the module docstring for the order of the rules."""
    text = _window(text)
    log = _Log(text)
    if exit_code == 0 and not stopped_by_user:
        # Rule 2 needs no scan beyond finding the completion marker for the excerpt.
        tail_at = max(0, len(text) - 65536)
        return _success(_Log(text[tail_at:]), scan(text[tail_at:], kinds=("success",)), "exit status 0")
    hits = scan(text)
    root = _root_cause(text)
    signal_hits = [h for h in hits if h.kind == "signal"]

    # 1. The supervisor sent the stop.
    if stopped_by_user:
        code = None
        if signal_hits:
            code = str(-(_signal_of(signal_hits[0]) or 15))
        elif exit_code is not None and exit_code != 0:
            code = str(exit_code)
        excerpt = log.excerpt(signal_hits[0].start) if signal_hits else _tail(text)
        return Diagnosis("killed", None, code, None, excerpt, "stopped by the user")

    excs = _exceptions(text)
    root_rank = root.rank if root is not None and root.exit != 0 else None
    picked_exc = _pick_exception(excs, root_rank)
    exc_pos = picked_exc.start() if picked_exc is not None else None

    # 2b. Training finished, then a rank aborted while shutting down: std::terminate from a
    # comm thread's destructor at interpreter exit (seen on CPU with gloo / DeepSpeed shm-comm under
    # load, and at the end of a LLaMA-Factory run). Every step and the results are there; only the
    # exit status says otherwise, so it is a success whose reason names the abort. The abort can
    # come between the markers: rank 1 dies while rank 0 is still saving and has yet to print its
    # `train metrics`, so it only has to follow the first of them.
    oks = [h.start for h in hits if h.kind == "success"]
    first_ok, last_ok = min(oks, default=-1), max(oks, default=-1)
    abort_at = text.find(TEARDOWN_ABORT, first_ok) if first_ok >= 0 else -1
    if abort_at >= 0 and (root is None or root.exit == -6) and (exc_pos is None or exc_pos > last_ok) \
            and not any(h.kind != "success" and h.start < last_ok for h in hits):
        return _success(log, hits, "training completed; a rank then aborted while shutting down")

    # With no exit status, a completion marker after every failure signature means it finished.
    if exit_code is None and last_ok >= 0 and last_ok > _last_failure_pos(hits, root, exc_pos):
        return _success(log, hits, "completion marker after any error in the log")

    # 3. Device out of memory.
    oom_hits = [h for h in hits if h.kind == "device_oom"]
    hit = min(oom_hits, key=lambda h: (h.signature.name in sig.WEAK_OOM, h.start), default=None)
    if hit is not None:
        code = hit.signature.code
        if code is None and any(h.signature.name == "npu_el0004" for h in hits):
            code = "EL0004"
        rank = root_rank if root_rank is not None else _rank_near(log, hit.start)
        return Diagnosis("oom", hit.signature.device, code, rank, log.excerpt(hit.start),
                         _clean(log.line(hit.start)))

    # 4. A rank SIGKILLed: the host ran out of memory (the OOM killer sends SIGKILL).
    if root is not None and root.exit == -9:
        return Diagnosis("oom", "host", "-9", root.rank, log.excerpt(root.start, 0, 7),
                         f"rank {root.rank} was killed by SIGKILL (exit -9): most likely the host OOM killer")
    hit = _first(hits, "host_oom")
    if hit is not None:
        rank = _rank_from_launcher(log, hit)
        return Diagnosis("oom", "host", hit.signature.code or "-9", rank, log.excerpt(hit.start),
                         _host_oom_reason(hit, rank))
    if exit_code in HOST_OOM_EXIT:
        return Diagnosis("oom", "host", "-9", None, _tail(text),
                         f"exit status {exit_code} means SIGKILL: most likely the host OOM killer")

    # 5. Stopped by a signal from outside.
    if root is not None and root.exit in (-15, -2, -1):
        signum = -root.exit
        return Diagnosis("killed", None, str(root.exit), root.rank, log.excerpt(root.start, 0, 7),
                         f"rank {root.rank} ended by {sig.SIGNAL_NAMES[signum]}")
    if signal_hits:
        hit = signal_hits[0]
        signum = _signal_of(hit) or 15
        name = sig.SIGNAL_NAMES.get(signum, f"signal {signum}")
        return Diagnosis("killed", None, str(-signum), None, log.excerpt(hit.start),
                         f"stopped by {name}: {_clean(log.line(hit.start))}")
    if exit_code in SIGNAL_EXIT:
        signum = SIGNAL_EXIT[exit_code]
        return Diagnosis("killed", None, str(-signum), None, _tail(text),
                         f"exit status {exit_code} means {sig.SIGNAL_NAMES[signum]}")

    # 6. Collective communication.
    # An Ascend EIxxxx code line is the most specific HCCL evidence; otherwise the first comm error.
    hit = next((h for h in hits if h.signature.name == "hccl_code"), None) or _first(hits, "comm")
    if hit is not None:
        code = hit.match.group(1) if hit.signature.name == "hccl_code" else None
        if code is None and hit.signature.device == "npu":
            code = next((h.match.group(1) for h in hits if h.signature.name == "hccl_code"), None)
        rank = root_rank if root_rank is not None else _rank_near(log, hit.start, look_ahead=EXCERPT_AFTER + 2)
        reason = _richest(log, hits, hit)
        if hit.signature.name == "gloo_peer_closed":
            reason = "a peer rank went away (crashed or was killed); check that rank's log: " + reason
        return Diagnosis("comm_error", hit.signature.device, code, rank, log.excerpt(hit.start), reason,
                         transient=is_transient_startup_failure(text))

    # 7. Other Ascend runtime errors: an E-code is the most specific evidence, else the first one.
    hit = next((h for h in hits if h.signature.name in ("ascend_code", "dcmi")), None) or _first(hits, "npu_error")
    if hit is not None:
        return Diagnosis("failed", "npu", _npu_code(hit, hits), _rank_near(log, hit.start), log.excerpt(hit.start),
                         _richest(log, hits, hit))

    # 8. A Python traceback.
    if picked_exc is not None:
        rank = root_rank
        if rank is None and picked_exc.group("rank") is not None:
            rank = int(picked_exc.group("rank"))
        if rank is None and _ds_single_rank(text):
            rank = 0
        msg = picked_exc.group("msg")
        reason = picked_exc.group("exc").rsplit(".", 1)[-1] + (f": {msg.strip()}" if msg and msg.strip() else "")
        return Diagnosis("failed", None, None, rank, log.excerpt(exc_pos or 0, 3, 2), _one_line(reason))

    # 9. Non-zero with nothing recognisable.
    launcher = _first(hits, "launcher_kill")
    if exit_code is not None:
        where = log.excerpt(launcher.start) if launcher is not None else _tail(text)
        return Diagnosis("failed", None, None, root_rank, where, f"exit status {exit_code}; no known error in the log")
    if launcher is not None:
        return Diagnosis("failed", None, None, root_rank, log.excerpt(launcher.start),
                         "the launcher tore the ranks down; the cause is not in the log (pass the exit status)")
    return Diagnosis(None, None, None, None, _tail(text), UNKNOWN_REASON)


UNKNOWN_REASON = "no error and no completion in the log: it was cut short, or the run is still going"
# Signatures whose first group is a code (an ACL return value, torch_npu's ERRxxxxx), not a description.
_CODE_GROUP = ("npu_function_error", "aclnn_failed", "pta_error")


def _npu_code(hit: Hit, hits: list[Hit]) -> str | None:
    name = hit.signature.name
    if name == "ascend_code":
        return hit.match.group(1)
    if name == "dcmi":
        return f"dcmi {hit.match.group(1)}"
    coded = [h for h in hits if h.signature.name in _CODE_GROUP and h.match.group(1)]
    own = hit.match.group(1) if name in _CODE_GROUP else None
    return own or (coded[0].match.group(1) if coded else None)


def _rank_from_launcher(log: _Log, hit: Hit) -> int | None:
    """The DeepSpeed launcher's argv is the last rank reaped, so trust it only for a single rank."""
    if hit.signature.name == "ds_rc_minus9":
        return 0 if _ds_single_rank(log.text) else None
    if hit.signature.name == "torchrun_minus9":
        m = re.search(r"local_rank: (\d+)", hit.match.group(0))
        return int(m.group(1)) if m else None
    return _rank_near(log, hit.start)


def _host_oom_reason(hit: Hit, rank: int | None) -> str:
    who = f"rank {rank}" if rank is not None else "a rank"
    if hit.signature.name == "python_memoryerror":
        return "MemoryError: the host ran out of memory"
    if hit.signature.name == "kernel_oom_killer":
        return "the kernel OOM killer killed a process"
    return f"{who} was killed by SIGKILL (exit -9): most likely the host OOM killer"


def _success(log: _Log, hits: list[Hit], why: str) -> Diagnosis:
    marker = next((h for h in reversed(hits) if h.kind == "success"), None)
    excerpt = log.excerpt(marker.start, 1, 6) if marker is not None else _tail(log.text)
    return Diagnosis("succeeded", None, None, None, excerpt, f"finished ({why})")


def _tail(text: str, lines: int = 6) -> str:
    tail = text[-4000:].rstrip("\n").split("\n")[-lines:]
    return "\n".join(_clip(line) for line in tail)


def is_transient_startup_failure(text: str) -> bool:
    """A start-up flake worth one automatic retry: the gloo mesh refused (seen ~1 run in 10 on CPU)
    or the rendezvous port taken. Never when the log shows an OOM, a SIGKILL or training progress."""
    text = _window(text)
    hits = scan(text)
    if not any(h.signature.transient for h in hits):
        return False
    if any(h.kind in ("device_oom", "host_oom", "signal", "success") for h in hits):
        return False
    first_flake = min(h.start for h in hits if h.signature.transient)
    # Progress before the flake means training had started: not a start-up failure.
    return re.search(r"\{'loss'|\"zerodeck\": ?\"step\"|\bstep=[1-9]", text[:first_flake]) is None


class UnreadableLog(ValueError):
    """The file is missing, unreadable, or not text."""


def read_log(path: str | Path) -> str:
    """The log's text; of a long log only the head and tail that `diagnose` reads (no 50 MB in memory)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            limit = HEAD_CHARS + TAIL_CHARS  # bytes >= characters, so this always covers the window
            if size <= limit + 4096:
                data = fh.read()
            else:
                head = fh.read(HEAD_CHARS)
                fh.seek(size - TAIL_CHARS)
                data = head + b"\n" + fh.read()
    except OSError as exc:
        raise UnreadableLog(f"{p}: cannot read: {exc.strerror or exc}") from exc
    if b"\x00" in data[:65536]:
        raise UnreadableLog(f"{p}: not a text log (binary data)")
    return data.decode("utf-8", errors="replace")


def diagnose_file(path: str | Path, exit_code: int | None = None, stopped_by_user: bool = False) -> Diagnosis:
    """`diagnose` on a log file; raises UnreadableLog for a missing, unreadable or binary file."""
    return diagnose(read_log(path), exit_code=exit_code, stopped_by_user=stopped_by_user)
