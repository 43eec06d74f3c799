"""A one-machine Slurm cluster for the tests: slurmctld plus two slurmd "nodes" on this host.

Built from Debian's `slurm-wlm` and `munge` (scripts/test.sh installs them when missing, as root).
Everything lives in one temporary directory: a munge key and munged on its own socket, slurm.conf
(`AuthInfo=socket=...`, `proctrack/linuxproc`, `task/none`, `select/cons_tres`, no slurmdbd),
gres.conf over fake card device files made with mknod, the state, spool and log files. The first
node is named after this host, so the rendezvous address a job derives from SLURM_JOB_NODELIST
resolves; the second is a second slurmd on its own port (`slurmd -N NAME`). Clients find it through
`SLURM_CONF`. Torn down after the session: jobs cancelled, daemons and every process started under
this configuration ended.

Tests that need it use the `slurm_cluster` fixture (import it into the test module); it skips with
the reason when the cluster cannot start here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "scancel")
CARDS_PER_NODE = 2
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()),
                                      None)


def missing_reason() -> str | None:
    """Why this machine cannot host the test cluster, or None."""
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        return f"Slurm test cluster: {', '.join(missing)} not installed (scripts/test.sh installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "Slurm test cluster: slurmd must run as root to start job steps"
    return None


class SlurmCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [self.host, "zdnode2"]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- files ------------------------------------------------------------------------------------
    def write(self) -> None:
        r = self.root
        for d in ("state", "dev", "spool", "log"):
            (r / d).mkdir()
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for i in range(CARDS_PER_NODE * len(self.nodes)):
            dev = r / "dev" / f"card{i}"
            try:
                os.mknod(dev, 0o644 | 0o020000, os.makedev(195, i))  # char device, like /dev/nvidiaN
            except OSError:
                dev.touch()
        cpus = max(1, min(os.cpu_count() or 1, 2))
        ctld, ports = _free_port(), [_free_port() for _ in self.nodes]
        lines = [
            "ClusterName=zdtest", "SlurmctldHost=localhost", f"SlurmctldPort={ctld}",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={r / 'munge.sock'}",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}/%n",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'spool'}/slurmd-%n.pid",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={r / 'log'}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "GresTypes=gpu",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none",
            # A node set DOWN stays down until resumed (a test fails a node on purpose).
            "ReturnToService=1",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
            "InactiveLimit=0", "KillWait=2", "MinJobAge=600", "OverTimeLimit=0",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "Waittime=0",
        ]
        for name, port in zip(self.nodes, ports, strict=True):
            lines.append(f"NodeName={name} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} "
                         f"RealMemory=1000 Gres=gpu:{CARDS_PER_NODE} State=UNKNOWN")
        lines.append(f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE "
                     "State=UP OverSubscribe=FORCE:4")
        self.conf.write_text("\n".join(lines) + "\n")
        gres = []
        for n, name in enumerate(self.nodes):
            first = n * CARDS_PER_NODE
            files = f"{r / 'dev'}/card[{first}-{first + CARDS_PER_NODE - 1}]"
            gres.append(f"NodeName={name} Name=gpu File={files}")
        (r / "gres.conf").write_text("\n".join(gres) + "\n")
        # Slurm 22.05's slurmd always loads a cgroup plugin; autodetect finds this host's.
        (r / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
        for name in self.nodes:
            (r / "spool" / name).mkdir()

    # -- daemons ----------------------------------------------------------------------------------
    def _start(self, argv: list[str], log: str) -> None:
        out = open(self.root / "log" / log, "wb")  # noqa: SIM115 - the daemon owns it until torn down
        self.procs.append(subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True))

    def start(self) -> None:
        self.write()
        r = self.root
        self._start([_which("munged") or "munged", "-F", "--force", f"--socket={r / 'munge.sock'}",
                     f"--key-file={r / 'munge.key'}", f"--log-file={r / 'log' / 'munged.log'}",
                     f"--pid-file={r / 'munged.pid'}", f"--seed-file={r / 'munged.seed'}"], "munged.out")
        self._wait(lambda: (r / "munge.sock").exists(), "munged did not create its socket")
        self._start([_which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld.out")
        for name in self.nodes:
            self._start([_which("slurmd") or "slurmd", "-D", "-N", name, "-f", str(self.conf)], f"slurmd-{name}.out")
        self._wait(self._nodes_idle, "the nodes did not come up idle")

    def _nodes_idle(self) -> bool:
        out = self.run(["sinfo", "--noheader", "--Node", "--format=%N %t"], check=False)
        states = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        return all(states.get(n, "").startswith(("idle", "mix", "alloc")) for n in self.nodes)

    def _wait(self, ok, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            with contextlib.suppress(Exception):
                if ok():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{what}; logs: {self.log_tail()}")

    def log_tail(self) -> str:
        tails = []
        for path in sorted((self.root / "log").glob("*")):
            with contextlib.suppress(OSError):
                lines = [ln for ln in path.read_text(errors="replace").splitlines() if "error" in ln.lower()]
                if lines:
                    tails.append(f"{path.name}: {lines[-1]}")
        return "; ".join(tails) or "(no errors logged)"

    def run(self, argv: list[str], check: bool = True) -> str:
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs Slurm still has pending or running."""
        out = self.run(["squeue", "--noheader", "--format=%i"], check=False)
        return out.split()

    def started_processes(self) -> list[int]:
        """Every live process started under this cluster's configuration (daemons, steps, jobs)."""
        import psutil

        found = []
        mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        for proc in psutil.process_iter():
            if proc.pid in mine:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("SLURM_CONF") == str(self.conf):
                    found.append(proc.pid)
        return found

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run(["scancel", "--full", "--quiet", f"--user={os.getuid()}"], check=False)
            deadline = time.monotonic() + 10
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.3)
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        # Steps and jobs outlive their slurmd; ours carry our SLURM_CONF (the daemons' environment).
        for pid in self.started_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="zd-slurm-"))
    root.chmod(0o755)  # munged checks its socket's directory
    cluster = SlurmCluster(root)
    try:
        cluster.start()
    except (RuntimeError, OSError) as exc:
        cluster.stop()
        pytest.skip(f"Slurm test cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The test cluster, with this test's processes (the CLI, supervisors, followers) pointed at it."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster
