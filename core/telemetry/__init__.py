"""Live per-card telemetry: parsers for npu-smi / nvidia-smi output, sources behind one small
interface (npu-smi, NVML, CPU rank processes, the host), a poller that never overlaps itself, and
the recorder that keeps a run's samples, peaks, baseline and failure snapshot in the store.

Snapshots are plain dataclasses so the CLI, the supervisor and the TUI share them without the ORM.
"""

from zerodeck.core.telemetry.model import Card, HostStats, Process, Snapshot

__all__ = ["Card", "HostStats", "Process", "Snapshot"]
