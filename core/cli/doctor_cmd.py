"""`zerodeck doctor`: what this machine has for training and telemetry, without importing torch.

Versions come from package metadata and driver files, so the check is fast and cannot itself be
broken by a bad torch / torch_npu install.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from zerodeck.core.cli.output import add_json_flag, emit
from zerodeck.core.errors import EXIT_FAILED, EXIT_OK
from zerodeck.core.i18n import _
from zerodeck.core.values import printable

PACKAGES = ("torch", "torch_npu", "deepspeed", "transformers", "llamafactory", "nvidia-ml-py", "psutil")
ASCEND = Path("/usr/local/Ascend")


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help=_("what this machine has: telemetry sources, drivers, versions, free memory"))
    add_json_flag(p)
    p.set_defaults(handler=cmd_doctor)


def package_versions() -> dict[str, str | None]:
    from importlib import metadata  # a fiftieth of a second: paid by `doctor`, not by every command's parser

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _read_key(path: Path, keys: tuple[str, ...]) -> str | None:
    try:
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in keys:
                return value.strip() or None
    except OSError:
        return None
    return None


def ascend_versions(root: Path = ASCEND) -> dict[str, str | None]:
    """Driver and CANN versions from the files the installers leave."""
    driver = _read_key(root / "driver" / "version.info", ("Version", "version"))
    cann = None
    for info in sorted(root.glob("ascend-toolkit/latest/*/ascend_toolkit_install.info")) + sorted(
            root.glob("cann*/*/ascend_toolkit_install.info")):
        cann = _read_key(info, ("version", "Version"))
        if cann:
            break
    return {"driver": driver, "cann": cann}


def read_sources(names: list[str], timeout: float) -> dict[str, Any]:
    """Each named source read once, all at the same time, so two hung tools cost one time-out."""
    from zerodeck.core.telemetry.model import Snapshot
    from zerodeck.core.telemetry.sources import make_source

    got: dict[str, Any] = {}

    def one(name: str) -> None:
        try:
            got[name] = make_source(name).read(timeout)
        except Exception as exc:  # a source bug is a finding, not a crash
            got[name] = Snapshot(source=name, error=f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout + 0.5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    # A read past its deadline (NVML has no time-out of its own) is reported, not waited for.
    return {n: got.get(n) or Snapshot(source=n, error=f"{n}: no answer within {timeout:g} s", timed_out=True)
            for n in names}


def collect(timeout: float | None = None) -> dict[str, Any]:
    import platform

    from zerodeck.core.telemetry.sources import CLI_TIMEOUT, availability

    why = availability()
    report: dict[str, Any] = {"host": platform.node(), "python": platform.python_version(),
                              "sources": {name: ("available" if reason is None else reason)
                                          for name, reason in why.items()},
                              "packages": package_versions(), "ascend": ascend_versions()}
    cards: list[dict[str, Any]] = []
    holders: list[dict[str, Any]] = []
    usable = [n for n in ("npu-smi", "nvidia") if why.get(n) is None]
    snaps = read_sources(usable, CLI_TIMEOUT if timeout is None else timeout)
    failed: list[str] = []
    for name in usable:
        snap = snaps[name]
        if name == "npu-smi" and snap.versions:
            report["ascend"]["npu-smi"] = snap.versions.get("npu-smi")
            report["ascend"]["driver"] = report["ascend"]["driver"] or snap.versions.get("driver")
        if snap.error:
            report["sources"][name] = snap.error
            failed.append(name)
            continue
        for c in snap.cards:
            used, total = c.device_used_mb, c.device_total_mb
            cards.append({"source": name, "card": c.key, "logical_id": c.logical_id, "name": c.name,
                          "health": c.health, "used_mb": used, "total_mb": total,
                          "free_mb": total - used if used is not None and total is not None else None})
        holders += [_holder(name, p) for p in snap.processes]
    report["cards"] = cards
    report["processes_holding_cards"] = holders
    report["failed_sources"] = failed
    from zerodeck.core.launch.slurm.doctor import slurm_report

    report["slurm"] = slurm_report()
    return report


def _holder(source: str, proc: Any) -> dict[str, Any]:
    """A process on a card; `stale` when its PID is gone from this machine's view (a leftover that
    still holds device memory, or a process of another container)."""
    import psutil

    alive = proc.pid is not None and psutil.pid_exists(proc.pid)
    return {"source": source, "npu": proc.npu, "chip": proc.chip, "pid": proc.pid, "name": proc.name,
            "memory_mb": proc.memory_mb, "stale": not alive}


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 1 when a tool that is installed failed to answer (hung, crashed): a problem found.
    A tool that is not installed is not one (a CPU box has no npu-smi)."""
    report = collect()
    code = EXIT_FAILED if report["failed_sources"] else EXIT_OK
    if args.json:
        emit(report, as_json=True)
        return code
    print(f"host {report['host']}  python {report['python']}")
    print("\n" + _("telemetry sources:"))
    for name, state in report["sources"].items():
        print(f"  {name:8} {printable(state)}")
    print("\n" + _("packages:"))
    for name, version in report["packages"].items():
        print(f"  {name:13} {version or _('not installed')}")
    asc = report["ascend"]
    print(f"\nascend: npu-smi {asc.get('npu-smi') or '-'}  driver {asc['driver'] or '-'}  CANN {asc['cann'] or '-'}")
    slurm = report["slurm"]
    if slurm["client"] is None or slurm["error"]:
        print(f"\nslurm: {printable(slurm['error'] or '-')}")
    else:
        print(f"\nslurm: {printable(slurm['version'] or '?')} ({printable(slurm['client'])})")
        for part in slurm["partitions"]:
            default = " (default)" if part["default"] else ""
            print(printable(f"  {part['name']:12} {part['state']:5} {part['nodes']} node(s), time limit "
                            f"{part['time_limit']}, GRES {part['gres'] or '-'}{default}"))
    if report["cards"]:
        print()
        emit(report["cards"], as_json=False, columns=["source", "card", "logical_id", "name", "health",
                                                      "used_mb", "total_mb", "free_mb"])
    stale = [h for h in report["processes_holding_cards"] if h["stale"]]
    if report["processes_holding_cards"]:
        print("\n" + _("processes holding cards: {n} ({stale} not visible here)")
              .format(n=len(report["processes_holding_cards"]), stale=len(stale)))
        emit(report["processes_holding_cards"], as_json=False)
    return code
