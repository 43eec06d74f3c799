"""The shared scheduler query on the real test cluster: many followers, one `squeue` per poll.

Quick (held jobs that never run), so not marked slow; skips with the reason where the test cluster
cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest
from zerodeck.core.launch.slurm.queue import SharedQueue

from tests.slurm_cluster import slurm_cluster, slurm_env  # noqa: F401 - fixtures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _held(cluster, tmp_path: Path, n: int) -> list[str]:  # noqa: ANN001
    script = tmp_path / "hold.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    return [cluster.run(["sbatch", "--parsable", "--hold", f"--output={tmp_path}/h-%j.out", str(script)]).strip()
            for _ in range(n)]


def test_followers_share_one_squeue_per_poll(slurm_env, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    ids = _held(slurm_env, tmp_path, 5)
    cache = tmp_path / "slurm" / "queue.json"
    clock = Clock()
    followers = [SharedQueue(cache, clock=clock) for _ in range(20)]  # as 20 follower processes would
    for i, queue in enumerate(followers):
        state = queue.observe([ids[i % 5]])[ids[i % 5]]
        assert state.state == "PENDING" and state.reason == "JobHeldUser"
    assert followers[0].calls() == {"squeue": 1}
    clock.now += 2.5  # the next poll: one more query for all of them
    for i, queue in enumerate(followers):
        queue.observe([ids[i % 5]])
    assert followers[0].calls() == {"squeue": 2}

    slurm_env.run(["scancel", *ids])
    clock.now += 2.5
    ended = followers[0].observe(ids)
    assert {s.state for s in ended.values()} == {"CANCELLED"}
    # The exit codes came from one final query: sacct refused (no slurmdbd), scontrol answered.
    calls = followers[0].calls()
    assert calls["squeue"] == 3 and calls.get("scontrol") == 1 and calls.get("sacct") == 1
    assert all(s.exit_code is not None for s in ended.values())
    clock.now += 2.5
    followers[1].observe(ids)  # what sacct cannot do is remembered for every follower
    assert followers[0].calls().get("sacct") == 1


def test_a_failed_query_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.launch.slurm.client import SlurmError

    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-such-slurm.conf"))
    queue = SharedQueue(tmp_path / "q.json")
    with pytest.raises(SlurmError) as exc:
        queue.observe(["1"])
    assert str(exc.value).startswith("squeue") and "\n" not in str(exc.value)


def test_doctor_reports_the_slurm_client_partitions_and_gres(slurm_env, cli) -> None:  # noqa: F811 - the fixture
    import json
    import re

    code, out, _err = cli("doctor", "--json")
    slurm = json.loads(out)["slurm"]
    assert slurm["error"] is None and slurm["client"].endswith("sbatch")
    assert re.match(r"^slurm(-wlm)? \d+\.\d+", slurm["version"]), slurm  # "slurm-wlm 22.05.8" on Debian
    (part,) = slurm["partitions"]
    assert (part["name"], part["default"], part["state"], part["nodes"], part["gres"]) == \
        ("debug", True, "up", 2, "gpu:2")
    code, out, _err = cli("doctor")
    assert f"slurm: {slurm['version']}" in out and "GRES gpu:2 (default)" in out
