"""The Slurm parts that need no cluster: the [cluster] table, the state → outcome mapping, Slurm's
output parsed (saved from the test cluster, tests/fixtures/slurm), the planner over nodes, the
slurm_job table and its migration from a version 4 store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from zerodeck.core.launch.slurm.client import parse_sacct, parse_scontrol, parse_squeue
from zerodeck.core.launch.slurm.states import JobState, exit_status, slurm_outcome
from zerodeck.core.outcome.classify import Diagnosis, diagnose
from zerodeck.core.plan.verdict import plan_recipe
from zerodeck.core.recipe import load_recipe_file
from zerodeck.core.recipe.load import content_hash
from zerodeck.core.recipe.model import Recipe

from .conftest import FIXTURES, ROOT

SLURM = FIXTURES / "slurm"
FAILED_LOG = "Traceback (most recent call last):\n  File \"train.py\", line 3\nRuntimeError: the step broke\n"


def _recipe(tmp_path: Path, cluster: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text('name = "r"\n[model]\nname = "zerodeck-tiny"\n' + cluster)
    return p


@pytest.mark.parametrize(("table", "message"), [
    ('[cluster]\nnodes = 2\n', 'cluster: nodes = 2 needs scheduler = "slurm"'),
    ('[cluster]\nscheduler = "pbs"\n', "cluster.scheduler"),
    ('[cluster]\nscheduler = "slurm"\ntime = "two hours"\n', "cluster.time: 'two hours'"),
    ('[cluster]\nscheduler = "slurm"\npartition = "a b"\n', "cluster.partition: 'a b'"),
    ('[cluster]\nscheduler = "slurm"\nextra = ["exclusive"]\n', "cluster.extra"),
    ('[cluster]\nscheduler = "slurm"\nnodes = 0\n', "cluster.nodes"),
])
def test_bad_cluster_tables_are_one_line_naming_the_field(cli, tmp_path: Path, table: str, message: str) -> None:
    code, out, err = cli("recipes", "validate", str(_recipe(tmp_path, table)))
    assert code == 2
    (line,) = out.strip().splitlines()
    assert line.startswith(str(tmp_path / "r.toml") + ":") and message in line, out
    assert "Traceback" not in err + out


def test_content_hash_is_unchanged_without_a_cluster_table() -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "demo-cpu-zero3.toml")
    before = content_hash(recipe)
    data = recipe.model_dump()
    data.pop("cluster")
    assert content_hash(Recipe.model_validate(data, strict=False)) == before
    data["cluster"] = {"scheduler": "slurm", "nodes": 2}
    assert content_hash(Recipe.model_validate(data, strict=False)) != before


def test_grid_expands_over_cluster_nodes(tmp_path: Path) -> None:
    from zerodeck.core.recipe.grid import expand

    p = _recipe(tmp_path, '[cluster]\nscheduler = "slurm"\n[grid]\n"cluster.nodes" = [1, 2, 4]\n')
    members = expand(load_recipe_file(p))
    assert [m.cluster.nodes for m in members] == [1, 2, 4]
    assert len({m.name for m in members}) == 3


def test_scheduler_flag_overrides_and_is_checked(cli, tmp_path: Path) -> None:
    p = _recipe(tmp_path, '[hardware]\ndevice = "cpu"\ncards = 1\n[launch]\nbackend = "command"\nargv = ["true"]\n')
    code, out, err = cli("run", str(p), "--scheduler", "slurm", "--dry-run")
    assert code == 0, err
    assert "#SBATCH --nodes=1" in out and "zerodeck.core.launch.slurm.follow" in out
    p2 = _recipe(tmp_path, '[cluster]\nscheduler = "slurm"\nnodes = 2\n')
    code, _out, err = cli("run", str(p2), "--scheduler", "local", "--dry-run")
    assert code == 2 and err.strip() == 'zerodeck: --scheduler local: r: cluster: nodes = 2 needs scheduler = "slurm"'


def test_zero3_shards_over_every_node() -> None:
    recipe = load_recipe_file(ROOT / "recipes" / "qwen2.5-72b-lora.toml")
    data = recipe.model_dump()
    data.pop("grid")
    data["method"] = {**data["method"], "kind": "full"}
    data["zero"] = {**data["zero"], "stage": 3}
    one = plan_recipe(Recipe.model_validate(data, strict=False))
    data["cluster"] = {"scheduler": "slurm", "nodes": 4}
    four = plan_recipe(Recipe.model_validate(data, strict=False))
    # Parameters, gradients and optimizer states are split over 32 ranks instead of 8.
    assert four.breakdown.total < one.breakdown.total / 2
    assert one.verdict == "oom" and four.breakdown.total < one.breakdown.total


# -- Slurm's own output -----------------------------------------------------------------------------
def test_parses_saved_squeue_and_scontrol_output() -> None:
    listed = parse_squeue((SLURM / "squeue-states-all.txt").read_text())
    assert listed["1"].state == "TIMEOUT" and listed["1"].reason == "TimeLimit" and listed["1"].node_list == "vm"
    shown = parse_scontrol((SLURM / "scontrol-show-job.txt").read_text())
    job = shown["1"]
    assert (job.state, job.exit_code, job.reason, job.partition) == ("TIMEOUT", "0:15", "TimeLimit", "debug")
    assert job.start_time == "2026-11-30T16:20:58" and job.terminal
    # Without slurmdbd sacct refuses (the saved answer): nothing parses, scontrol answers instead.
    assert parse_sacct((SLURM / "sacct-no-slurmdbd.out").read_text()) == {}
    assert "accounting storage is disabled" in (SLURM / "sacct-no-slurmdbd.err").read_text()


def test_sacct_lines_keep_allocations_only() -> None:
    text = "12|CANCELLED by 0|0:15|n[1-2]|2026-01-01T00:00:00|2026-01-01T00:00:01|2026-01-01T00:10:00|gpu|None\n" \
           "12.batch|CANCELLED|0:15|n1|||||\n"
    got = parse_sacct(text)
    assert list(got) == ["12"] and got["12"].state == "CANCELLED" and got["12"].node_list == "n[1-2]"


@pytest.mark.parametrize(("code", "status"), [("0:0", 0), ("3:0", 3), ("0:15", 143), ("0:9", 137), (None, None)])
def test_exit_status(code: str | None, status: int | None) -> None:
    assert exit_status(code) == status


# -- states → outcomes ------------------------------------------------------------------------------
def _job(state: str, **kw: str) -> JobState:
    return JobState("9", state, **kw)


def test_slurm_states_map_onto_outcomes() -> None:
    bare = diagnose("", exit_code=143)
    timeout = slurm_outcome(_job("TIMEOUT", exit_code="0:15"), bare)
    assert (timeout.outcome, timeout.reason) == ("killed", "time limit (Slurm TIMEOUT, exit 0:15)")
    assert slurm_outcome(_job("PREEMPTED"), bare).outcome == "killed"
    lost = slurm_outcome(_job("NODE_FAIL", node_list="npu-a01,npu-a02"), bare, failed_node="npu-a02")
    assert lost.outcome == "lost" and lost.reason.startswith("node npu-a02 failed (Slurm NODE_FAIL")
    unsure = slurm_outcome(_job("NODE_FAIL", node_list="npu-a01,npu-a02"), bare)  # back up before we asked
    assert unsure.reason.startswith("a node of npu-a01,npu-a02 failed")
    oom = slurm_outcome(_job("OUT_OF_MEMORY", exit_code="0:125"), bare)
    assert (oom.outcome, oom.device) == ("oom", "host") and "Slurm OUT_OF_MEMORY" in oom.reason
    assert slurm_outcome(_job("CANCELLED"), bare, stopped=True).reason == "stopped on request (Slurm CANCELLED)"
    assert slurm_outcome(_job("CANCELLED"), bare).reason == "cancelled outside zerodeck (Slurm CANCELLED)"


def test_failed_is_diagnosed_from_the_logs_and_keeps_the_state() -> None:
    d = diagnose(FAILED_LOG, exit_code=1)
    failed = slurm_outcome(_job("FAILED", exit_code="1:0"), d)
    assert failed.outcome == d.outcome == "failed"
    assert failed.reason.endswith("(Slurm FAILED, exit 1:0)") and d.reason in failed.reason
    ok = Diagnosis("succeeded", None, None, None, "", "")
    assert slurm_outcome(_job("COMPLETED", exit_code="0:0"), ok).outcome == "succeeded"


# -- the store ---------------------------------------------------------------------------------------
def test_a_version_4_store_migrates_to_6_with_its_runs(zd_home: Path) -> None:
    from zerodeck.store import models
    from zerodeck.store.api import Store
    from zerodeck.store.engine import reset_engines

    assert models.SCHEMA_VERSION == 6
    zd_home.mkdir(parents=True, exist_ok=True)
    db = zd_home / "v4.db"
    url = f"sqlite:///{db}"
    store = Store.open(url)
    store.save_snapshot(hash="h", name="r", toml="", source_path=None)
    run_id = store.add_run(name="r", recipe_hash="h")
    reset_engines()
    with sqlite3.connect(db) as conn:  # what a version 4 store is: no slurm_job table
        conn.execute("DROP TABLE slurm_job")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    store = Store.open(url)
    assert store.run(run_id) is not None
    store.upsert_slurm_job(run_id, job_id="17", state="PENDING", state_reason="Resources", nodes=2, cards_per_node=8)
    store.upsert_slurm_job(run_id, state="RUNNING", queue_wait_s=3.5)
    job = store.slurm_job(run_id)
    assert (job.job_id, job.state, job.state_reason, job.nodes, job.queue_wait_s) == \
        ("17", "RUNNING", "Resources", 2, 3.5)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "6"
    with pytest.raises(TypeError):
        store.upsert_slurm_job(run_id, bogus=1)  # type: ignore[call-arg]


def test_the_supervisor_reads_how_the_job_ended(tmp_path: Path) -> None:
    import json

    from zerodeck.core.launch.slurm.result import STATE_FILE, adjust

    bare = diagnose("", exit_code=1)
    assert adjust(tmp_path, bare) == bare  # a local run: no state file
    (tmp_path / STATE_FILE).write_text(json.dumps({"state": "NOT_SUBMITTED", "error": "sbatch: invalid partition"}))
    assert (adjust(tmp_path, bare).outcome, adjust(tmp_path, bare).reason) == ("failed", "sbatch: invalid partition")
    # A job Slurm forgot is judged by its log, as a local run whose processes are gone.
    (tmp_path / STATE_FILE).write_text(json.dumps({"job_id": "5", "state": "UNKNOWN"}))
    vanished = adjust(tmp_path, diagnose("", exit_code=None))
    assert vanished.outcome == "lost" and "vanished" in vanished.reason
    done = "{\"zerodeck\": \"done\", \"steps\": 20, \"train_runtime\": 7.1, \"train_loss\": 4.2}\n"
    assert adjust(tmp_path, diagnose(done, exit_code=None)).outcome == "succeeded"
    (tmp_path / STATE_FILE).write_text(json.dumps({"job_id": "5", "state": "CANCELLED", "stopped": True}))
    assert adjust(tmp_path, bare).reason == "stopped on request (Slurm CANCELLED)"


def test_node_telemetry_keeps_per_node_peaks_and_a_bounded_series(tmp_path: Path) -> None:
    import json

    from zerodeck.core.launch.slurm.nodes import MAX_POINTS, node_telemetry

    for node, base in (("npu-a01", 1000.0), ("npu-a02", 2000.0)):
        rows = [{"wall": 100.0 + i, "node": node, "host_used_mb": 500.0, "host_total_mb": 1000.0,
                 "cards": [{"card": "0", "used_mb": base + i, "total_mb": 65536.0, "util_pct": 50.0}]}
                for i in range(2000)]
        text = "".join(json.dumps(r) + "\n" for r in rows) + '{"wall": 3000, "cards": [{"ca'  # being written
        (tmp_path / f"{node}.jsonl").write_text(text)
    samples, peaks, nodes = node_telemetry(tmp_path, "npu")
    assert nodes == ["npu-a01", "npu-a02"]
    by = {(p.source, p.card): p for p in peaks}
    assert by[("npu-smi", "npu-a02:0")].peak_mb == 3999.0 and by[("npu-smi", "npu-a01:0")].baseline_mb == 1000.0
    assert by[("host", "npu-a01")].total_mb == 1000.0
    per_card = [s for s in samples if s.card == "npu-a01:0"]
    assert len(per_card) <= MAX_POINTS and per_card[0].t == 0.0 and per_card[-1].t > 1900
