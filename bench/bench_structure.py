"""Structure figures for the store/run-model refactor (issue 10): start-up and bulk-read times of the
CLI at 10,000 runs, lines of code per package, and `duplicates` pairs.

Run from a checkout, with that checkout's virtual environment:

    .venv/bin/python bench/bench_structure.py [--runs 10000]

Options: `--zerodeck PATH` (default: the `zerodeck` next to this Python), `--tree DIR` (default: the
checkout this file lives in), `--runs N` (default 10,000), `--repeat K` (default 5), `--keep` (leave the
seeded ZERODECK_HOME in place and print its path). To compare two checkouts, run each one's copy of
this script with its own venv, e.g. `/work/wt/before/.venv/bin/python /work/wt/before/bench/
bench_structure.py --tree /work/wt/before`.

What it does:
1. Seeds a fresh temporary ZERODECK_HOME without zerodeck's Python API (which changes between
   versions): `zerodeck runs --json` once makes the program create its own schema (so a newer
   zerodeck never migrates during timing), then the stdlib `sqlite3` module inserts a few dozen
   recipe snapshots (full recipe dumps, as the launcher stores them) and N finished runs that point
   at them, with realistic outcomes, peaks, throughput, loss, tags/argv/env JSON and datetimes, plus
   one card_peak row per card (at most 8). Only the columns the `run` table has are filled (PRAGMA
   table_info); where the schema has the run-axis columns (model, method, lora_rank, zero_stage,
   offload, micro_batch, seq_len, data_samples) they are filled from the run's snapshot.
2. Times `zerodeck --help`, `zerodeck runs --json` and `zerodeck compare --all --format csv`: one
   warm-up, then the median (and min/max) of K runs, wall clock of the whole process. Each must exit
   0 with non-empty output; the JSON list and the CSV rows are counted against N.
3. Lines of code: non-blank lines of *.py per package (core, store, tui, tests, bench), files as git
   lists them (tracked plus untracked-not-ignored) in a checkout, else every file below.
4. `duplicates` pairs: core/, store/ and tui/ are copied (the same file list) into one temporary
   folder and `duplicates --repo THAT --most 200 --seconds 120` runs there once, so pairs across the
   three packages count and tests/bench do not. The figure is the N of its first line "N pairs of
   places (F files read) ... (S by shape alone, B of those marked boilerplate)"; a whole-tree count
   (`duplicates --repo TREE`, tests and bench included) is printed beside it for reference.
5. Whether `zerodeck --help` imports SQLAlchemy / textual / pydantic (`python -X importtime`).

The machine's load average is printed before and after: the timings are wall clock.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PACKAGES = ("core", "store", "tui", "tests", "bench")
DUP_PACKAGES = ("core", "store", "tui")
AXIS_COLUMNS = ("model", "method", "lora_rank", "zero_stage", "offload", "micro_batch", "seq_len", "data_samples")

# ---------------------------------------------------------------------------------------------------
# Recipe snapshots: full dumps in the shape core/recipe/load.py's to_toml writes (tomli_w of to_dict).


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[\n" + "".join(f"    {_toml_value(x)},\n" for x in v) + "]"
    raise TypeError(type(v))


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small tomli_w-alike: scalars first, then one [table] per nested dict (empty ones too)."""
    out = [f"{k} = {_toml_value(v)}\n" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}{k}"
            out.append(f"\n[{name}]\n{_toml(v, f'{name}.')}")
    return "".join(out)


def _samples_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def recipe_dicts(rng: random.Random, count: int = 40) -> list[dict[str, Any]]:
    """`count` distinct full recipe dicts (the grid members a round of experiments would run)."""
    models = [
        "Qwen2.5-7B",
        "Qwen2.5-14B",
        "Qwen2.5-32B",
        "Qwen2.5-72B",
        "Qwen3-8B",
        "Qwen3-14B",
        "Qwen3-32B",
        "zerodeck-tiny",
    ]
    methods = [("lora", 8), ("lora", 16), ("lora", 64), ("full", 8), ("freeze", 8)]
    zeros = [(0, "none"), (2, "none"), (2, "optimizer"), (3, "none"), (3, "optimizer"), (3, "all")]
    seqs = [1024, 2048, 4096]
    mbs = [1, 2, 4]
    samples = [5000, 20000, 50000]
    seen: set[tuple[Any, ...]] = set()
    out: list[dict[str, Any]] = []
    while len(out) < count:
        model = rng.choice(models)
        kind, rank = rng.choice(methods)
        stage, offload = rng.choice(zeros)
        seq, mb, n = rng.choice(seqs), rng.choice(mbs), rng.choice(samples)
        tiny = model == "zerodeck-tiny"
        if tiny:
            seq, n, kind, rank = 64, 200, "full", 8
        key = (model, kind, rank, stage, offload, seq, mb, n)
        if key in seen:
            continue
        seen.add(key)
        base = model.lower() + ("-lora" if kind == "lora" else f"-{kind}")
        name_parts = [model.lower(), kind + (str(rank) if kind == "lora" else ""), f"z{stage}"]
        if offload != "none":
            name_parts.append("off-opt" if offload == "optimizer" else "off-all")
        name_parts += [_samples_label(n), f"seq{seq}", f"mb{mb}"]
        if tiny:
            device, cards, card_gb, backend = "cpu", 2, 4.0, "builtin"
        elif rng.random() < 0.7:
            device, cards, card_gb, backend = "npu", 8, 64.0, "llamafactory"
        else:
            device, cards, card_gb, backend = "cuda", rng.choice([4, 8]), 80.0, "llamafactory"
        data: dict[str, Any]
        if tiny:
            data = {"path": "data/demo-alpaca.jsonl", "format": "alpaca", "samples": n}
        else:
            data = {"dataset": "train_sft", "format": "alpaca", "samples": n, "template": "qwen"}
        train: dict[str, Any] = {
            "micro_batch": mb,
            "grad_accum": 8 if not tiny else 1,
            "seq_len": seq,
            "epochs": 3.0 if not tiny else 1.0,
        }
        if tiny:
            train["max_steps"] = 20
        train.update(
            {
                "lr": 0.0001 if kind == "lora" else 1e-05,
                "grad_ckpt": not tiny,
                "precision": "fp32" if tiny else "bf16",
                "attn": "sdpa",
                "seed": 42,
                "logging_steps": 1,
            }
        )
        out.append(
            {
                "name": "-".join(name_parts),
                "description": f"{model} {kind} on {cards} x {device} ({card_gb:g} GB), ZeRO-{stage}",
                "tags": ["bench", device, f"grid:{base}"],
                "model": {"name": model},
                "method": {
                    "kind": kind,
                    "rank": rank,
                    "alpha": 2 * rank,
                    "dropout": 0.0,
                    "target": "all",
                    "freeze_trainable_layers": 2,
                },
                "zero": {"stage": stage, "offload": offload},
                "data": data,
                "train": train,
                "hardware": {"device": device, "cards": cards, "card_gb": card_gb},
                "launch": {"backend": backend, "args": [], "retries": 0, "env": {}},
            }
        )
    return out


def snapshot_hash(recipe: dict[str, Any]) -> str:
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def axes_of(recipe: dict[str, Any]) -> dict[str, Any]:
    """What a schema with run-axis columns stores for a run of this recipe."""
    kind = recipe["method"]["kind"]
    return {
        "model": recipe["model"]["name"],
        "method": kind,
        "lora_rank": recipe["method"]["rank"] if kind == "lora" else None,
        "zero_stage": recipe["zero"]["stage"],
        "offload": recipe["zero"]["offload"],
        "micro_batch": recipe["train"]["micro_batch"],
        "seq_len": recipe["train"]["seq_len"],
        "data_samples": recipe["data"].get("samples"),
    }


# ---------------------------------------------------------------------------------------------------
# Seeding


def _dt(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME text: naive, microseconds, UTC by zerodeck's convention.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if value is not None else None


_OUTCOMES = [("succeeded", 70), ("oom", 12), ("failed", 8), ("comm_error", 5), ("killed", 4), ("lost", 1)]
_PARAMS_B = {
    "Qwen2.5-7B": 7.6,
    "Qwen2.5-14B": 14.8,
    "Qwen2.5-32B": 32.8,
    "Qwen2.5-72B": 72.7,
    "Qwen3-8B": 8.2,
    "Qwen3-14B": 14.8,
    "Qwen3-32B": 32.8,
    "zerodeck-tiny": 0.01,
}


def _predicted_gib(r: dict[str, Any]) -> float:
    p = _PARAMS_B[r["model"]["name"]]
    cards = r["hardware"]["cards"]
    stage = r["zero"]["stage"]
    weights = 2 * p / (cards if stage == 3 else 1)
    if r["method"]["kind"] == "lora":
        states = 0.02 * p
    else:
        states = 16 * p / (cards if stage >= 1 else 1)
        if r["zero"]["offload"] != "none":
            states *= 0.2
    acts = 0.00035 * r["train"]["seq_len"] * r["train"]["micro_batch"] * (p**0.5)
    return round(weights + states + acts + 2.5, 3)


def run_row(
    i: int, rng: random.Random, recipe: dict[str, Any], digest: str, t0: datetime, home: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_id = i + 1
    hw, tr = recipe["hardware"], recipe["train"]
    device, cards, card_gb = hw["device"], hw["cards"], hw["card_gb"]
    predicted = _predicted_gib(recipe)
    outcome = rng.choices([o for o, _ in _OUTCOMES], [w for _, w in _OUTCOMES])[0]
    if predicted > card_gb and rng.random() < 0.9:
        outcome = "oom"  # a plan that does not fit mostly ends as it should
    samples = recipe["data"]["samples"]
    steps_total = tr.get("max_steps") or max(
        1, int(samples * tr["epochs"] / (tr["micro_batch"] * tr["grad_accum"] * cards))
    )
    created = t0 + timedelta(minutes=7 * i, seconds=rng.uniform(0, 300))
    started = created + timedelta(seconds=rng.uniform(1.5, 20))
    step_time = round(rng.uniform(0.4, 9.0), 3)
    if outcome == "succeeded":
        steps_done = steps_total
        peak = min(card_gb * 0.97, predicted * rng.uniform(0.85, 1.1))
    elif outcome == "oom":
        steps_done = rng.randint(0, 3)
        peak = card_gb * rng.uniform(0.96, 0.995)
    else:
        steps_done = rng.randint(0, steps_total)
        peak = min(card_gb * 0.97, predicted * rng.uniform(0.8, 1.05))
    runtime = round(step_time * max(steps_done, 1) + rng.uniform(30, 240), 2)
    ended = started + timedelta(seconds=runtime)
    sps = round(tr["micro_batch"] * tr["grad_accum"] * cards / step_time, 3)
    reasons = {
        "oom": ("out of memory: tried to allocate 2.00 GiB on card 3", "EL0004" if device == "npu" else "CUDA_OOM", 3),
        "comm_error": ("HCCL timeout: rank 5 did not join the collective", "EI0006", 5),
        "failed": ("trainer exited 1: KeyError: 'input_ids'", None, 0),
        "killed": ("stopped by the user", "-9", None),
        "lost": ("supervisor gone; no process of the run left", None, None),
    }
    reason, code, rank = reasons.get(outcome, (None, None, None))
    port = 29500 + (run_id % 400)
    workdir = home / "runs" / str(run_id)
    visible = ",".join(str(c) for c in range(cards))
    env = {"MASTER_PORT": str(port), "HF_TOKEN": "***", "PYTHONUNBUFFERED": "1"}
    env["ASCEND_RT_VISIBLE_DEVICES" if device == "npu" else "CUDA_VISIBLE_DEVICES"] = visible
    if device == "npu":
        env["HCCL_CONNECT_TIMEOUT"] = "1200"
    ds_config = {
        "train_micro_batch_size_per_gpu": tr["micro_batch"],
        "gradient_accumulation_steps": tr["grad_accum"],
        "bf16": {"enabled": tr["precision"] == "bf16"},
        "zero_optimization": {
            "stage": recipe["zero"]["stage"],
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": 500000000,
        },
    }
    train_yaml = "\n".join(
        [
            f"model_name_or_path: Qwen/{recipe['model']['name']}",
            "stage: sft",
            "do_train: true",
            f"finetuning_type: {recipe['method']['kind']}",
            f"lora_rank: {recipe['method']['rank']}",
            "dataset: train_sft",
            "template: qwen",
            f"cutoff_len: {tr['seq_len']}",
            f"per_device_train_batch_size: {tr['micro_batch']}",
            f"gradient_accumulation_steps: {tr['grad_accum']}",
            f"learning_rate: {tr['lr']}",
            f"num_train_epochs: {tr['epochs']}",
            "bf16: true",
            f"output_dir: {workdir}/output",
            f"deepspeed: {workdir}/ds_config.json",
            "",
        ]
    )
    row: dict[str, Any] = {
        "id": run_id,
        "name": recipe["name"],
        "recipe_hash": digest,
        "recipe_path": f"/srv/recipes/{recipe['tags'][2].removeprefix('grid:')}.toml",
        "grid": None,
        "tags": json.dumps(recipe["tags"]),
        "status": "finished",
        "outcome": outcome,
        "reason": reason,
        "outcome_device": device if outcome in ("oom", "comm_error") else None,
        "outcome_code": code,
        "outcome_rank": rank,
        "outcome_excerpt": f"[rank{rank}] {reason}" if rank is not None else None,
        "exit_code": {"succeeded": 0, "killed": -9, "lost": None}.get(outcome, 1),
        "attempts": 1,
        "attempts_log": "[]",
        "backend": recipe["launch"]["backend"],
        "device": device,
        "cards": cards,
        "card_gb": card_gb,
        "argv": json.dumps(
            ["llamafactory-cli", "train", f"{workdir}/train.yaml"]
            if recipe["launch"]["backend"] == "llamafactory"
            else [sys.executable, "-m", "zerodeck.core.launch.trainer", f"{workdir}/spec.json"]
        ),
        "env": json.dumps(env),
        "rendered": json.dumps({"ds_config.json": json.dumps(ds_config, indent=2), "train.yaml": train_yaml}),
        "versions": json.dumps(
            {
                "python": "3.11.9",
                "zerodeck": "0.1.0",
                "torch": "2.4.0",
                "deepspeed": "0.15.4",
                "transformers": "4.46.1",
                "llamafactory": "0.9.3",
                "torch_npu": "2.4.0.post2" if device == "npu" else None,
                "cann": "8.0.RC3" if device == "npu" else None,
            }
        ),
        "host": f"node{run_id % 4:02d}",
        "workdir": str(workdir),
        "log_path": f"{workdir}/train.log",
        "supervisor_pid": 40000 + run_id,
        "pgid": 40001 + run_id,
        "master_port": port,
        "stop_requested": 0,
        "created_at": _dt(created),
        "started_at": _dt(started),
        "ended_at": _dt(ended),
        "predicted_peak_gib": predicted,
        "measured_peak_gib": round(peak, 3),
        "steps_done": steps_done,
        "steps_total": steps_total,
        "final_loss": round(rng.uniform(0.6, 2.1), 4) if steps_done else None,
        "samples_per_s": sps if steps_done else None,
        "tokens_per_s": round(sps * tr["seq_len"], 1) if steps_done else None,
        "step_time_s": step_time if steps_done else None,
        "train_runtime_s": runtime,
        "summary": json.dumps(
            {
                "epoch": tr["epochs"] if outcome == "succeeded" else None,
                "grad_norm_last": round(rng.uniform(0.1, 3.0), 3),
            }
        ),
        "baseline": json.dumps({"cards": {str(c): {"memory_used_mb": 3200.0} for c in range(min(cards, 8))}}),
        "failure_snapshot": "{}" if outcome == "succeeded" else json.dumps({"t": runtime, "cards": {}}),
    }
    row.update(axes_of(recipe))
    source = {"npu": "npu-smi", "cuda": "nvidia", "cpu": "cpu"}[device]
    total_mb = card_gb * 1024
    peaks = []
    for c in range(min(cards, 8)):
        p = peak * rng.uniform(0.9, 1.0) if c else peak
        peaks.append(
            {
                "run_id": run_id,
                "source": source,
                "card": str(c) if device != "cpu" else f"rank{c}",
                "peak_mb": round(p * 1024, 1),
                "baseline_mb": 3200.0,
                "total_mb": total_mb,
            }
        )
    return row, peaks


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, bool]]:
    """(name, required) per column: NOT NULL without a default, except an INTEGER PRIMARY KEY."""
    return [(r[1], bool(r[3]) and r[4] is None and not r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> list[str]:
    cols = _columns(conn, table)
    have = set(rows[0])
    missing = [name for name, required in cols if required and name not in have]
    if missing:
        raise SystemExit(f"bench: table {table} has required columns this seeder does not fill: {missing}")
    use = [name for name, _ in cols if name in have]
    sql = f"INSERT INTO {table} ({', '.join(use)}) VALUES ({', '.join('?' * len(use))})"
    conn.executemany(sql, [tuple(r[c] for c in use) for r in rows])
    return use


def seed(db: Path, n: int, home: Path, rng: random.Random) -> dict[str, Any]:
    recipes = recipe_dicts(rng)
    snaps = [(snapshot_hash(r), r) for r in recipes]
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc) - timedelta(minutes=7 * n)
    conn = sqlite3.connect(db)
    try:
        schema = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if conn.execute("SELECT COUNT(*) FROM run").fetchone()[0]:
            raise SystemExit(f"bench: {db} is not empty")
        with conn:
            _insert(
                conn,
                "recipe_snapshot",
                [
                    {
                        "hash": h,
                        "name": r["name"],
                        "toml": _toml(r).lstrip("\n"),
                        "source_path": f"/srv/recipes/{r['tags'][2].removeprefix('grid:')}.toml",
                        "created_at": _dt(t0),
                    }
                    for h, r in snaps
                ],
            )
            runs, peaks = [], []
            for i in range(n):
                h, r = rng.choice(snaps)
                row, card_rows = run_row(i, rng, r, h, t0, home)
                runs.append(row)
                peaks += card_rows
            run_cols = _insert(conn, "run", runs)
            _insert(conn, "card_peak", peaks)
    finally:
        conn.close()
    return {
        "schema_version": schema[0] if schema else None,
        "snapshots": len(snaps),
        "runs": n,
        "card_peaks": len(peaks),
        "axis_columns": [c for c in AXIS_COLUMNS if c in run_cols],
        "db_mib": db.stat().st_size / 2**20,
    }


# ---------------------------------------------------------------------------------------------------
# Timing


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(
            f"bench: {' '.join(cmd)} exited {proc.returncode} with "
            f"{len(proc.stdout)} bytes of output\n{proc.stderr[-2000:]}"
        )
    return elapsed, proc


def time_command(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[list[float], str]:
    _run(cmd, env)  # warm-up: page cache, .pyc files
    times, out = [], ""
    for _ in range(repeat):
        elapsed, proc = _run(cmd, env)
        times.append(elapsed)
        out = proc.stdout
    return times, out


def import_check(zerodeck: Path, env: dict[str, str]) -> str:
    """Which heavy packages `zerodeck --help` imports, from `python -X importtime` of the entry script."""
    try:
        first = zerodeck.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return "n/a (cannot read the entry script)"
    if not first.startswith("#!") or "python" not in first:
        return "n/a (the entry script is not a Python script)"
    python = first[2:].strip().split()[0]
    proc = subprocess.run(
        [python, "-X", "importtime", str(zerodeck), "--help"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    mods = [
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "imported package" not in line
    ]
    tops = {m.split(".")[0] for m in mods}
    heavy = [p for p in ("sqlalchemy", "sqlmodel", "pydantic", "textual", "rich", "tomli_w") if p in tops]
    return f"{len(mods)} modules; of sqlalchemy/sqlmodel/pydantic/textual/rich/tomli_w: {', '.join(heavy) or 'none'}"


# ---------------------------------------------------------------------------------------------------
# Lines of code and duplicates


def tree_files(tree: Path, package: str) -> list[Path]:
    """The files of one package as `duplicates` would read them: git's list in a checkout, else all."""
    root = tree / package
    if not root.is_dir():
        return []
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "ls-files", "-co", "--exclude-standard", "--", package],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        files = [tree / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        files = [p for p in root.rglob("*") if "__pycache__" not in p.parts]
    return sorted(p for p in files if p.is_file())


def loc(files: list[Path]) -> tuple[int, int]:
    py = [p for p in files if p.suffix == ".py"]
    lines = sum(1 for p in py for line in p.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
    return len(py), lines


_DUP_HEAD = re.compile(
    r"^(\d+) pairs? of places \((\d+) files? read\)(?:.*\((\d+) by shape alone, (\d+) of those "
    r"marked boilerplate\))?"
)


def duplicates(repo: Path) -> tuple[str, str]:
    """(pairs, detail) from the first line of `duplicates --repo REPO`."""
    exe = shutil.which("duplicates")
    if exe is None:
        return "n/a", "`duplicates` is not on PATH"
    proc = subprocess.run(
        [exe, "--repo", str(repo), "--most", "200", "--seconds", "120"], capture_output=True, text=True
    )
    lines = proc.stdout.splitlines()
    head = lines[0] if lines else ""
    notes = [line for line in lines if line.startswith("incomplete:")]
    if head.startswith("no duplicates"):
        return "0", head + ("; " + "; ".join(notes) if notes else "")
    m = _DUP_HEAD.match(head)
    if not m:
        return "?", f"unparsed: {head!r}"
    pairs, files, shape, boiler = m.groups()
    detail = f"{files} files read"
    if shape is not None:
        detail += f"; {shape} by shape alone, {boiler} of those boilerplate"
    if notes:
        detail += "; " + "; ".join(notes)
    return pairs, detail


def duplicates_of(tree: Path, packages: tuple[str, ...]) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="zerodeck-dups-") as tmp:
        for pkg in packages:
            for f in tree_files(tree, pkg):
                dest = Path(tmp) / f.relative_to(tree)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
        return duplicates(Path(tmp))


# ---------------------------------------------------------------------------------------------------


def _table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _git_head(tree: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--zerodeck",
        type=Path,
        default=Path(sys.executable).parent / "zerodeck",
        help="the zerodeck executable to time (default: the one next to this Python)",
    )
    ap.add_argument("--tree", type=Path, default=here, help="the checkout to count (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=10_000, help="runs to seed (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per command, after one warm-up")
    ap.add_argument("--seed", type=int, default=10, help="random seed of the seeded data")
    ap.add_argument("--keep", action="store_true", help="keep the seeded ZERODECK_HOME")
    args = ap.parse_args(argv)
    zd = args.zerodeck.absolute()
    if not zd.is_file():
        ap.error(f"{zd}: no such executable")
    tree = args.tree.resolve()

    print(f"# bench_structure  {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    print(f"tree      {tree}  ({_git_head(tree)})")
    print(f"zerodeck  {zd}")
    print(f"machine   {os.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (start)")

    home = Path(tempfile.mkdtemp(prefix="zerodeck-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("ZERODECK_DB",)}
    env["ZERODECK_HOME"] = str(home)
    env.setdefault("COLUMNS", "120")
    try:
        _run([str(zd), "runs", "--json"], env)  # the program creates (or migrates to) its own schema
        db = home / "zerodeck.db"
        if not db.is_file():
            raise SystemExit(f"bench: `zerodeck runs --json` made no {db}")
        t = time.perf_counter()
        info = seed(db, args.runs, home, random.Random(args.seed))
        print(
            f"seeded    {info['runs']} runs, {info['snapshots']} recipe snapshots, {info['card_peaks']} card_peak "
            f"rows in {time.perf_counter() - t:.1f} s; schema version {info['schema_version']}; "
            f"{info['db_mib']:.1f} MiB; run-axis columns filled: {', '.join(info['axis_columns']) or 'none (v1)'}"
        )

        commands = [
            ("zerodeck --help", ["--help"]),
            ("zerodeck runs --json", ["runs", "--json"]),
            ("zerodeck compare --all --format csv", ["compare", "--all", "--format", "csv"]),
        ]
        rows = [["command", "median s", "min s", "max s", "output"]]
        for label, cmd in commands:
            times, out = time_command([str(zd), *cmd], env, args.repeat)
            if cmd[0] == "runs":
                n = len(json.loads(out))
                what = f"{n} runs in JSON" + ("" if n == args.runs else f" (expected {args.runs}!)")
            elif cmd[0] == "compare":
                body = list(csv.reader(io.StringIO(out.lstrip("\ufeff"))))
                n = len(body) - 1
                what = f"{n} CSV rows + header, {len(body[0])} columns" + (
                    "" if n == args.runs else f" (expected {args.runs}!)"
                )
            else:
                what = f"{len(out.splitlines())} lines"
            rows.append([label, f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}", what])
        print()
        print(f"## CLI wall time, {args.runs} runs (median of {args.repeat} after one warm-up)")
        print(_table(rows, {1, 2, 3}))
        print(f"--help imports: {import_check(zd, env)}")
    finally:
        if args.keep:
            print(f"kept ZERODECK_HOME={home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    print()
    print("## Lines of code (non-blank lines of *.py)")
    rows = [["package", "files", "lines"]]
    total_f = total_l = 0
    for pkg in PACKAGES:
        f, n = loc(tree_files(tree, pkg))
        total_f, total_l = total_f + f, total_l + n
        rows.append([pkg, str(f), str(n)])
    rows.append(["total", str(total_f), str(total_l)])
    print(_table(rows, {1, 2}))

    print()
    print("## duplicates pairs (`duplicates --most 200 --seconds 120`: N of its first line, 'N pairs of places')")
    pairs, detail = duplicates_of(tree, DUP_PACKAGES)
    whole, whole_detail = duplicates(tree)
    print(
        _table(
            [["scope", "pairs", "detail"], ["core+store+tui", pairs, detail], ["whole tree", whole, whole_detail]], {1}
        )
    )
    print()
    print(f"machine   load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
