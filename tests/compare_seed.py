"""A fixed set of runs written through the real store API, for the compare/export goldens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from zerodeck.store.api import Store
from zerodeck.store.migrations import snapshot_axes
from zerodeck.store.records import CardPeakRecord, SampleRecord

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=timezone.utc)

QWEN7_Z0 = """name = "qwen2.5-7b-lora-z0"
[model]
name = "Qwen2.5-7B"
[method]
kind = "lora"
rank = 8
[zero]
stage = 0
[data]
dataset = "train_sft"
samples = 20000
[train]
micro_batch = 1
seq_len = 2048
[hardware]
device = "npu"
cards = 8
card_gb = 64.0
[launch]
backend = "llamafactory"
"""

QWEN7_Z3 = QWEN7_Z0.replace('"qwen2.5-7b-lora-z0"', '"qwen2.5-7b-lora-z3"').replace("stage = 0", "stage = 3")
QWEN14_Z0 = (QWEN7_Z0.replace("qwen2.5-7b-lora-z0", "qwen2.5-14b-lora-z0").replace("Qwen2.5-7B", "Qwen2.5-14B")
             .replace("rank = 8", "rank = 16"))
# A different kind of recipe: full fine-tuning (no LoRA rank), no sample count, CPU, defaults left out.
DEMO = """name = "demo-cpu-zero2"
[model]
name = "zerodeck-tiny"
[method]
kind = "full"
[zero]
stage = 2
[train]
micro_batch = 4
seq_len = 64
[hardware]
device = "cpu"
cards = 2
card_gb = 4.0
[launch]
backend = "builtin"
"""


def _run(store: Store, toml: str, hash_: str, **fields: Any) -> int:
    name = toml.split('"')[1]
    store.save_snapshot(hash=hash_, name=name, toml=toml, source_path=f"recipes/{name}.toml")
    # The axis columns as create_run writes them for a new run and migration 2 for an older one.
    return store.add_run(name=name, recipe_hash=hash_, status="finished", **{**snapshot_axes(toml), **fields})


def _peaks(source: str, peaks_mb: list[float], total_mb: float) -> list[CardPeakRecord]:
    return [CardPeakRecord(source=source, card=str(i), peak_mb=p, baseline_mb=300.0, total_mb=total_mb)
            for i, p in enumerate(peaks_mb)]


def seed(store: Store) -> dict[str, int]:
    """Four finished runs of three recipe shapes, plus telemetry and metrics for the first."""
    ids: dict[str, int] = {}
    argv = ["llamafactory-cli", "train", "/runs/1/train.yaml"]
    env = {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "MASTER_PORT": "29500"}
    ids["z0"] = _run(
        store, QWEN7_Z0, "h7z0", grid="qwen2.5-7b-lora", tags=["seed", "910b"], outcome="succeeded",
        exit_code=0, backend="llamafactory", device="npu", cards=8, card_gb=64.0, argv=argv, env=env,
        created_at=T0, started_at=T0, ended_at=T0 + timedelta(seconds=5400.5),
        predicted_peak_gib=30.5, measured_peak_gib=31.2, steps_done=1875, steps_total=1875, final_loss=1.2345,
        samples_per_s=11.111, tokens_per_s=22755.3, step_time_s=2.88, train_runtime_s=5390.0,
        summary={"eval_loss": 1.301, "note": "warm cache"},
    )
    samples = []
    for k in range(6):
        for card in ("0", "1"):
            samples.append(SampleRecord(t=-5.0 + 60.0 * k, source="npu-smi", card=card,
                                        memory_used_mb=3000.0 + 5000.0 * k + (400.0 if card == "1" else 0.0),
                                        memory_total_mb=65536.0))
        samples.append(SampleRecord(t=-5.0 + 60.0 * k, source="host", card="host", memory_used_mb=100000.0,
                                    memory_total_mb=1048576.0))
    store.replace_telemetry(ids["z0"], samples, [
        *_peaks("npu-smi", [31948.8, 31000.0, 30720.0, 30800.0, 30900.0, 31100.0, 30650.0, 31200.0], 65536.0),
        *_peaks("host", [180000.0], 1048576.0),
    ])
    store.upsert_metrics(ids["z0"], [{"step": s, "t": 3.0 * s, "loss": 2.0 - s / 2000} for s in (1, 500, 1000)])

    ids["z3"] = _run(
        store, QWEN7_Z3, "h7z3", grid="qwen2.5-7b-lora", tags=["seed", "910b"], outcome="succeeded",
        exit_code=0, backend="llamafactory", device="npu", cards=8, card_gb=64.0, argv=argv, env=env,
        created_at=T0 + timedelta(hours=2), started_at=T0 + timedelta(hours=2),
        ended_at=T0 + timedelta(hours=2, seconds=7200), predicted_peak_gib=18.0,
        steps_done=1875, steps_total=1875, final_loss=1.2401, samples_per_s=8.333, tokens_per_s=17066.0,
        step_time_s=3.84, train_runtime_s=7190.0,
    )
    store.replace_telemetry(ids["z3"], [], _peaks("npu-smi", [19456.0] * 8, 65536.0))

    ids["oom"] = _run(
        store, QWEN14_Z0, "h14z0", grid="qwen2.5-14b-lora", tags=["seed"], outcome="oom",
        reason="NPU out of memory on rank 3 (EL0004)", outcome_device="npu", outcome_code="EL0004",
        outcome_rank=3, exit_code=1, backend="llamafactory", device="npu", cards=8, card_gb=64.0,
        argv=argv, created_at=T0 + timedelta(hours=4), started_at=T0 + timedelta(hours=4),
        ended_at=T0 + timedelta(hours=4, seconds=95), predicted_peak_gib=66.1, steps_done=0, steps_total=1875,
    )
    store.replace_telemetry(ids["oom"], [], _peaks(
        "npu-smi", [65200.0, 65300.0, 65100.0, 65536.0, 65000.0, 65000.0, 64900.0, 65000.0], 65536.0))

    ids["demo"] = _run(
        store, DEMO, "hdemo", tags=["demo", "cpu"], outcome="succeeded", exit_code=0, backend="builtin",
        device="cpu", cards=2, card_gb=4.0, argv=["python", "-m", "zerodeck.core.train", "--x=a b"],
        env={"DS_ACCELERATOR": "cpu"}, created_at=T0 + timedelta(hours=5),
        started_at=T0 + timedelta(hours=5), ended_at=T0 + timedelta(hours=5, seconds=42),
        steps_done=20, steps_total=20, final_loss=0.5, samples_per_s=95.2, tokens_per_s=6092.8, step_time_s=0.042,
        summary={"eval_loss": 0.61},
    )
    store.replace_telemetry(ids["demo"], [], _peaks("cpu", [812.5, 790.0], 4096.0))
    return ids
