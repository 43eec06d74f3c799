"""The log signatures the outcome classifier looks for, one compiled pattern each.

They live apart from the decision logic in `classify.py` so a new framework's error text is a
one-line addition here. Each pattern is run with `finditer` over the whole log (never line by line):
a pattern that starts with a literal lets `re` skip ahead fast, which is what keeps a 50 MB log
cheap. Every pattern is bounded to one line (`[^\\n]`) so a hit maps back to a line for the excerpt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What may precede a message on a line: a reporter's `[1743] ` line number, vLLM's
# `(Worker pid=1) ERROR 09-07 01:11:09 [file.py:1] `, torch's `[rank3]:` prefix.
LINE_PREFIX = r"(?:\[\d+\] )?(?:\([^()\n]*pid=\d+\) ?)*(?:[A-Z]+ \d\d-\d\d [\d:]+ \[[^\]\n]+\] ?)?(?:\[rank\d+\]: ?)?"


@dataclass(frozen=True)
class Signature:
    """One kind of evidence: what it means (`kind`), on which device, and an optional code."""

    name: str
    kind: str  # device_oom | host_oom | signal | comm | npu_error | success | launcher_kill
    device: str | None
    pattern: re.Pattern[str]
    code: str | None = None
    transient: bool = False
    line_start: bool = False  # only when nothing but a LINE_PREFIX precedes it on its line


def _p(regex: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(regex, flags)


SIGNATURES: tuple[Signature, ...] = (
    # -- device out of memory -------------------------------------------------------------------
    # torch >= 2.4 `torch.OutOfMemoryError: CUDA out of memory. ... GPU 0 has a total capacity`,
    # torch 1.x `OutOfMemoryError: CUDA out of memory. ... (GPU 0; ...)`, `CUDA error: out of memory`.
    Signature("cuda_oom", "device_oom", "cuda", _p(r"CUDA (?:error: )?out of memory[^\n]*")),
    Signature("cublas_alloc", "device_oom", "cuda", _p(r"CUBLAS_STATUS_ALLOC_FAILED[^\n]*")),
    # torch_npu caching allocator: `RuntimeError: NPU out of memory. Tried to allocate ...`.
    Signature("npu_oom", "device_oom", "npu", _p(r"NPU out of memory[^\n]*")),
    # CANN operator-level: `EL0004: [PID: n] <ts> Failed to allocate memory.`
    Signature("npu_el0004", "device_oom", "npu", _p(r"EL0004[^\n]*"), code="EL0004"),
    Signature("npu_alloc", "device_oom", "npu",
              _p(r"Failed to (?:allocate memory|apply for memory|allocate resource\[DeviceMemory\])[^\n]*")),
    # A CPU tensor allocation failing (the CPU is the compute device there).
    Signature("cpu_alloc", "device_oom", "cpu", _p(r"DefaultCPUAllocator: (?:can't|not enough) [^\n]*")),
    # -- host memory: a rank SIGKILLed (the kernel OOM killer is the usual sender) -----------------
    # DeepSpeed launcher: `[...] exits with return code = -9` (it prints the LAST rank's argv).
    Signature("ds_rc_minus9", "host_oom", "host", _p(r"exits with return code = -9\b[^\n]*"), code="-9"),
    # torchrun E-line `failed (exitcode: -9) local_rank: 1 (pid: ...)`; the Root Cause block
    # (`exitcode : -9 ... (SIGKILL)`) is parsed separately in classify.py.
    Signature("torchrun_minus9", "host_oom", "host", _p(r"failed \(exitcode: -9\) local_rank: \d+[^\n]*"), code="-9"),
    Signature("kernel_oom_killer", "host_oom", "host", _p(r"Out of memory: Kill(?:ed)? process[^\n]*"), code="-9"),
    # A shell reporting its child SIGKILLed: `/bin/sh: line 1: 12345 Killed   python train.py`.
    Signature("shell_killed", "host_oom", "host", _p(r": line \d+: +\d+ Killed\b[^\n]*"), code="-9"),
    Signature("python_memoryerror", "host_oom", "host", _p(r"MemoryError\b[^\n]*"), line_start=True),
    # -- stopped by a signal (SIGTERM / SIGINT / SIGHUP) -----------------------------------------
    Signature("ds_main_sigterm", "signal", None, _p(r"Main process received (SIG[A-Z]+)[^\n]*")),
    Signature("torchrun_death_signal", "signal", None, _p(r"Received (\d+) death signal[^\n]*")),
    Signature("signal_exception", "signal", None, _p(r"SignalException: Process \d+ got signal: (\d+)[^\n]*")),
    Signature("keyboard_interrupt", "signal", None, _p(r"(?m)KeyboardInterrupt(?:KeyboardInterrupt)*[ \t\r]*$"),
              line_start=True),
    # -- collective communication -----------------------------------------------------------------
    # HCCL (Ascend): EI00xx / EI9999 codes, plog `[ERROR] HCCL(...)` lines, error-code returns.
    Signature("hccl_code", "comm", "npu", _p(r"(EI\d{4})(?=[:\[( ])[^\n]*")),
    Signature("hccl_plog", "comm", "npu", _p(r"\[ERROR\] HCCL\([^\n]*")),
    Signature("hccl_call", "comm", "npu", _p(r"Hccl[A-Za-z]+(?:, error code is| failed)[^\n]*")),
    Signature("hccl_fftsplus", "comm", "npu", _p(r"fftsplus task timeout[^\n]*")),
    Signature("hccl_notify", "comm", "npu", _p(r"Notify register has not received the Notify record[^\n]*")),
    # NCCL (CUDA): watchdog timeouts, aborted communicators, DistBackendError, nccl* error codes.
    Signature("nccl_watchdog", "comm", "cuda", _p(r"Watchdog caught collective[^\n]*")),
    Signature("nccl_aborted", "comm", "cuda", _p(r"NCCL communicator was aborted[^\n]*")),
    Signature("nccl_backend", "comm", "cuda", _p(r"DistBackendError[^\n]*")),
    Signature("nccl_error", "comm", "cuda", _p(r"NCCL error[^\n]*")),
    Signature("nccl_code", "comm", "cuda", _p(r"nccl(?:Internal|System|Invalid|Remote)Error[^\n]*")),
    Signature("nccl_timeout", "comm", "cuda", _p(r"Some NCCL operations have failed or timed out[^\n]*")),
    # gloo (CPU): the start-up mesh flake, a peer going away, collective timeouts.
    Signature("gloo_connect_mesh", "comm", "cpu", _p(r"Gloo connectFullMesh failed[^\n]*"), transient=True),
    Signature("gloo_peer_closed", "comm", "cpu", _p(r"Connection closed by peer[^\n]*")),
    Signature("gloo_peer_reset", "comm", "cpu", _p(r"gloo[^\n]*Connection reset by peer[^\n]*")),
    Signature("gloo_timeout", "comm", "cpu", _p(r"Timed out waiting \d+ms for (?:send|recv) operation[^\n]*")),
    # torch.distributed rendezvous / store: the master port taken is a start-up flake too.
    Signature("dist_port_in_use", "comm", None,
              _p(r"DistNetworkError: [^\n]*(?:EADDRINUSE|[Aa]ddress already in use)[^\n]*"), transient=True),
    Signature("dist_network", "comm", None, _p(r"DistNetworkError[^\n]*")),
    Signature("dist_store", "comm", None, _p(r"DistStoreError[^\n]*")),
    Signature("rendezvous_timeout", "comm", None, _p(r"RendezvousTimeoutError[^\n]*")),
    # -- other Ascend runtime errors (not memory, not HCCL): failed on the NPU with the code --------
    Signature("ascend_code", "npu_error", "npu", _p(r"(E[A-HJ-Z]\d{4})(?=[:\[(])[^\n]*")),
    Signature("dcmi", "npu_error", "npu", _p(r"dcmi mod(?:ule|el) initiali[sz]ed? failed[^\n]*?ret is (-?\d+)[^\n]*")),
    # Runtime and operator failures that carry no E-code on their own line: torch_npu's
    # `NPU function error: call aclnnInplaceZero failed, error code is 561103` (the code is the ACL
    # return value), its `[ERROR] ... ERR00100 PTA call acl api failed`, the device exception dump's
    # `RTS_HWTS: aicore exception, slot_id=31`, and the runtime's `[aicore exception]` / `The aicore
    # execution is abnormal`. Without them such a crash read as a bare traceback, device unknown.
    Signature("npu_function_error", "npu_error", "npu",
              _p(r"NPU function error:(?:[^\n]*?error code is (\d+))?[^\n]*")),
    Signature("aclnn_failed", "npu_error", "npu", _p(r"call aclnn\w* failed(?:[^\n]*?error code is (\d+))?[^\n]*")),
    Signature("pta_error", "npu_error", "npu", _p(r"(ERR\d{5}) PTA[^\n]*")),
    Signature("rts_hwts", "npu_error", "npu", _p(r"RTS_HWTS: ([a-z ]+?(?:exception|error))[^\n]*")),
    Signature("aicore_exception", "npu_error", "npu",
              _p(r"(?:\[(aicore exception)\]|there is an? (?:exception of )?(?:fftsplus )?(aicore error)(?: exception)?"
                 r"|The (aicore) execution is abnormal)[^\n]*")),
    # -- the launcher tore the job down (cause must come from elsewhere) ---------------------------
    Signature("ds_rc_nonzero", "launcher_kill", None, _p(r"exits with return code = (-?\d+)[^\n]*")),
    Signature("ds_killing", "launcher_kill", None, _p(r"sigkill_handler\] Killing subprocess[^\n]*")),
    # -- finished -----------------------------------------------------------------------------------
    Signature("ds_exit_ok", "success", None, _p(r"Process \d+ exits successfully[^\n]*")),
    Signature("hf_train_metrics", "success", None, _p(r"\*\*\*\*\* train metrics \*\*\*\*\*")),
    Signature("hf_train_runtime", "success", None, _p(r"\{'train_runtime': [^\n]*")),
    Signature("hf_completed", "success", None, _p(r"Training completed\. Do not forget[^\n]*")),
    Signature("zerodeck_done", "success", None, _p(r"\{\"zerodeck\": ?\"done\"[^\n]*")),
    # ms-swift logs this only after its pipeline returned (swift/pipelines/base.py: main); its
    # `last_model_checkpoint:` line is no proof, it is written in a `finally` after a crash too.
    Signature("swift_main_end", "success", None, _p(r"End time of running main: [^\n]*")),
)

LINE_PREFIX_ONLY = re.compile(LINE_PREFIX + r"[ \t]*")

# A Python exception line: `ValueError: ...`, `torch.distributed...ChildFailedError: `, maybe prefixed.
EXCEPTION_LINE = re.compile(
    r"(?m)^" + LINE_PREFIX.replace(r"(?:\[rank\d+\]: ?)?", r"(?:\[rank(?P<rank>\d+)\]: ?)?")
    + r"(?P<exc>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Failure|Interrupt|Exit))"
    + r"(?::[ \t]*(?P<msg>[^\n]*))?\r?$"
)

# Exceptions that only report that something below failed: never the root cause if another exists.
WRAPPER_EXCEPTIONS = ("ChildFailedError", "CalledProcessError", "SignalException", "KeyboardInterrupt", "SystemExit")

# torchrun's summary box: the Root Cause section names the rank and its exit code.
ROOT_CAUSE = re.compile(
    r"Root Cause \(first observed failure\):\r?\n(?:[^\n]*\n){0,3}?[^\n]*rank\s*:\s*(?P<rank>\d+)[^\n]*\n"
    r"[^\n]*exitcode\s*:\s*(?P<exit>-?\d+)[^\n]*"
)

# Where a line names its rank, most trustworthy first.
RANK_PATTERNS = (
    re.compile(r"\[rank(\d+)\]:"),
    re.compile(r"\[(?:PG \d+ )?Rank (\d+)\]"),
    re.compile(r"\bon rank (\d+)\b"),
    re.compile(r"\bRank\[(\d+)\]"),
    re.compile(r"\brank\[(\d+)\]"),
    re.compile(r"\brankId\[(\d+)\]"),
    re.compile(r"\bRankID:(\d+)\)"),
)
RANK_PREFIX = re.compile(r"\[rank(\d+)\]:")
RANK_FAILED = re.compile(r"\b[Rr]ank\[?(\d+)\]? failed")

# Device-OOM signatures that only back up a stronger message (an EL0004 or "out of memory" line).
WEAK_OOM = ("npu_alloc", "cublas_alloc")

# Headers stripped from a line before it becomes a one-line reason: progress bars, torch's
# `[E602 11:17:52.18 ProcessGroupNCCL.cpp:632] `, vLLM's worker prefix, HCCL plog headers.
REASON_PREFIX = re.compile(
    r"^(?:\[\d+\] )?(?:[^|\n]*\|[^|\n]*\|[^\[\n]*\])?"
    r"(?:\([^()\n]*pid=\d+\) ?)*(?:[A-Z]+ \d\d-\d\d [\d:]+ \[[^\]\n]+\] ?)?"
    r"(?:\[[EWIF]\d{3,4} [^\]\n]*\] ?)?(?:[IWEF]\d{4} [\d:.]+ \d+ [^\]\n]+\] ?)?"
    r"(?:\[\d{4}-\d\d-\d\d [\d:,]+\] \[[A-Z]+\] \[[^\]\n]+\] ?)?(?:\[ERROR\] HCCL\([^)]*\):\S+ \[[^\]]*\] \[\d+\]-*)?"
)

# The DeepSpeed launcher says how many ranks it started; with one, the failing rank is rank 0.
DS_WORLD_SIZE = re.compile(r"dist_world_size=(\d+)")

SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 9: "SIGKILL", 15: "SIGTERM"}
SIGNAL_NUMBERS = {v: k for k, v in SIGNAL_NAMES.items()}
