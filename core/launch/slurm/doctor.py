"""What `zerodeck doctor` says about Slurm: the client found, its version, partitions and GRES.

A Slurm client that is installed but cannot reach a controller (no slurm.conf, DNS SRV lookup
failing) is reported with Slurm's own line; it is not a fault of this machine's training setup,
so it never turns doctor's exit status to 1.
"""

from __future__ import annotations

import shutil
from typing import Any

from zerodeck.core.launch.slurm.client import Runner, SlurmError, run_command

TIMEOUT_S = 5.0


def slurm_report(runner: Runner = run_command, which: Any = shutil.which) -> dict[str, Any]:
    client = which("sbatch")
    report: dict[str, Any] = {"client": client, "version": None, "partitions": [], "error": None}
    if client is None:
        report["error"] = "sbatch: not found on PATH (no Slurm client)"
        return report
    try:
        rc, out, err = runner(["sinfo", "--version"], TIMEOUT_S)
        report["version"] = out.strip() or None
        rc, out, err = runner(["sinfo", "--noheader", "--format=%P|%a|%D|%l|%G|%c"], TIMEOUT_S)
    except SlurmError as exc:
        report["error"] = str(exc)
        return report
    if rc != 0:
        lines = (err.strip() or out.strip() or f"exit status {rc}").splitlines()
        report["error"] = lines[-1] if lines[-1].startswith("sinfo") else f"sinfo: {lines[-1]}"
        return report
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6:
            continue
        name, avail, nodes, limit, gres, cpus = parts[:6]
        report["partitions"].append({"name": name.rstrip("*"), "default": name.endswith("*"), "state": avail,
                                     "nodes": int(nodes) if nodes.isdigit() else nodes, "time_limit": limit,
                                     "gres": None if gres in ("(null)", "") else gres, "cpus_per_node": cpus})
    return report
