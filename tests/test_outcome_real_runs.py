"""Real torchrun runs on the CPU (gloo), classified and parsed as the supervisor will do it."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from zerodeck.core.outcome import diagnose, parse_metrics

SCRIPT = textwrap.dedent('''
    import json, os, signal, sys, time
    signal.alarm(90)  # never outlive the test, whatever happens to the launcher
    import torch
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mode = sys.argv[1]
    t0 = time.monotonic()
    for step in range(1, 4):
        t = torch.ones(4) * (rank + 1)
        if mode == "kill" and rank == 1 and step == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # what the kernel OOM killer does
        dist.all_reduce(t)
        if rank == 0:
            print(json.dumps({"zerodeck": "step", "step": step, "total_steps": 3, "loss": 4.0 / step,
                              "lr": 0.001, "samples_per_s": 10.0, "tokens_per_s": 640.0,
                              "peak_mem_mb": 100.0, "rank": 0, "t": round(time.monotonic() - t0, 3)}),
                  flush=True)
    if rank == 0:
        print(json.dumps({"zerodeck": "done", "steps": 3, "train_runtime": 0.5, "train_loss": 2.4,
                          "samples_per_s": 10.0, "tokens_per_s": 640.0}), flush=True)
    dist.destroy_process_group()
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(tmp_path: Path, mode: str) -> tuple[int, str]:
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), str(script), mode],
        cwd=tmp_path, capture_output=True, text=True, timeout=150,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "TORCHELASTIC_ERROR_FILE": ""},
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_real_rank_sigkill_is_host_oom(tmp_path: Path) -> None:
    code, log = _torchrun(tmp_path, "kill")
    assert code == 1, log[-2000:]  # torchrun exits 1 whatever the cause
    d = diagnose(log, exit_code=code)
    assert (d.outcome, d.device, d.code, d.rank) == ("oom", "host", "-9", 1), log[-3000:]


@pytest.mark.slow
def test_real_success_and_builtin_metrics(tmp_path: Path) -> None:
    code, log = _torchrun(tmp_path, "ok")
    assert code == 0, log[-2000:]
    assert diagnose(log, exit_code=code).outcome == "succeeded"
    assert diagnose(log).outcome == "succeeded"  # the zerodeck done line is a completion marker
    m = parse_metrics(log.splitlines())
    assert [p["loss"] for p in m.points] == [4.0, 2.0, 4.0 / 3]
    assert (m.summary["steps_done"], m.summary["steps_total"], m.summary["train_runtime_s"]) == (3, 3, 0.5)
