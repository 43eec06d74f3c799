"""Schema migrations: `MIGRATIONS[n]` upgrades a database from version n-1 to n.

Each step is plain SQL on a connection inside a transaction, written so it never drops a row and
for every backend (columns are looked up with SQLAlchemy's `inspect`, types spelled per dialect);
a release that changes models.py adds a step here and bumps SCHEMA_VERSION.

Why a linear numbered history and not Alembic: every store in use already records its version as
`meta.schema_version`, so this history needs no stamping step on upgrade and no revision graph;
zerodeck is one application with one line of releases (no branches to merge), adds a few columns
per release, and the steps are written by hand either way (Alembic's autogenerate cannot tell a
rename from a drop, and SQLite needs batch mode). What Alembic would add for a team is the safety
of concurrent starts, and that is done here directly: the engine (`engine._prepare`) runs the check,
every step, `create_all` and the version write in ONE transaction that holds the store's migration
lock — `pg_advisory_xact_lock` on PostgreSQL, `BEGIN IMMEDIATE` (the write lock) on SQLite — and
reads the version again once it holds it. Of several processes opening an old or empty store at
once, one migrates and the others wait, then find it done; a step that fails rolls every step back
(PostgreSQL and SQLite both have transactional DDL). An up-to-date store takes no lock at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tomllib
from sqlalchemy import inspect, text

# Migration 2 reads axes from stored recipe snapshots. Snapshots are full dumps of the recipe model,
# so every key is normally present; these are the recipe model's defaults for hand-made ones
# (tests/test_store_api.py checks they match zerodeck.core.recipe.model, which store/ cannot import).
AXIS_DEFAULTS: dict[str, Any] = {
    "method": "lora", "lora_rank": 8, "zero_stage": 0, "offload": "none", "micro_batch": 1, "seq_len": 2048,
}
_AXIS_TYPES = {"model": "VARCHAR", "method": "VARCHAR", "lora_rank": "INTEGER", "zero_stage": "INTEGER",
               "offload": "VARCHAR", "micro_batch": "INTEGER", "seq_len": "INTEGER", "data_samples": "INTEGER"}


def snapshot_axes(toml_text: str) -> dict[str, Any]:
    """The run-axis columns of one recipe snapshot ({} when it does not parse or is empty)."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError:
        return {}
    if not data:  # an empty snapshot states no axes; defaults would invent a LoRA run that never was
        return {}

    def sec(name: str) -> dict[str, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    model, method, zero, train, data_sec = sec("model"), sec("method"), sec("zero"), sec("train"), sec("data")
    label = model.get("name") or (str(model.get("path") or "").rstrip("/").rsplit("/", 1)[-1] or None)
    kind = method.get("kind", AXIS_DEFAULTS["method"])
    return {
        "model": label,
        "method": kind,
        "lora_rank": method.get("rank", AXIS_DEFAULTS["lora_rank"]) if kind == "lora" else None,
        "zero_stage": zero.get("stage", AXIS_DEFAULTS["zero_stage"]),
        "offload": zero.get("offload", AXIS_DEFAULTS["offload"]),
        "micro_batch": train.get("micro_batch", AXIS_DEFAULTS["micro_batch"]),
        "seq_len": train.get("seq_len", AXIS_DEFAULTS["seq_len"]),
        "data_samples": data_sec.get("samples"),
    }


def _columns(conn: Any, table: str) -> set[str]:
    """The columns a table has now, on any backend: a step adds only what is missing, so a store
    that already has a column (or a step run twice) is left as it is."""
    return {column["name"] for column in inspect(conn).get_columns(table)}


def _datetime(conn: Any) -> str:
    """The column type SQLAlchemy's DateTime makes on this backend (PostgreSQL has no DATETIME)."""
    return "TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"


def _v2_run_axes(conn: Any) -> None:
    have = _columns(conn, "run")
    for name, sql_type in _AXIS_TYPES.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE run ADD COLUMN {name} {sql_type}"))
    snapshots = conn.execute(text("SELECT hash, toml FROM recipe_snapshot")).all()
    for digest, toml_text in snapshots:
        axes = snapshot_axes(toml_text or "")
        if axes:
            sets = ", ".join(f"{k} = :{k}" for k in axes)
            conn.execute(text(f"UPDATE run SET {sets} WHERE recipe_hash = :hash"), {**axes, "hash": digest})


_PLACEMENT_TYPES = {"card_ids": "VARCHAR NOT NULL DEFAULT '[]'", "hccl_base_port": "INTEGER",
                    "hccl_ports": "INTEGER", "placement": "VARCHAR"}


def _v3_card_ledger(conn: Any) -> None:
    """The run's placement columns; older runs held no ledger cards, so `card_ids` starts empty.
    The ledger tables themselves are new and made by create_all after the steps."""
    have = _columns(conn, "run")
    for name, sql_type in _PLACEMENT_TYPES.items():
        if name not in have:
            conn.execute(text(f"ALTER TABLE run ADD COLUMN {name} {sql_type}"))
def _v4_events_resume(conn: Any) -> None:
    """Resume links and the stall flag on run; the event table itself is made by create_all after
    the steps. Columns are added only when missing, so a store that already has them is left as is."""
    have = _columns(conn, "run")
    for name, sql_type in (("parent_id", "INTEGER"), ("resumed_from", "VARCHAR"), ("stalled_at", _datetime(conn))):
        if name not in have:
            conn.execute(text(f"ALTER TABLE run ADD COLUMN {name} {sql_type}"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_run_parent_id ON run (parent_id)"))


def _v5_leases_hosts(conn: Any) -> None:
    """Issue 14: the claim token on run (fencing), and on queue_item its token, its pinned host and its
    lease. Old items are unclaimed (token 0, no lease); an old run has no token and is written as
    before. The `host` table is new and made by create_all after the steps."""
    stamp = _datetime(conn)
    if "claim_token" not in _columns(conn, "run"):
        conn.execute(text("ALTER TABLE run ADD COLUMN claim_token INTEGER"))
    have = _columns(conn, "queue_item")
    for name, sql_type in (("host", "VARCHAR"), ("claim_token", "INTEGER NOT NULL DEFAULT 0"),
                           ("lease_host", "VARCHAR"), ("lease_expires_at", stamp)):
        if name not in have:
            conn.execute(text(f"ALTER TABLE queue_item ADD COLUMN {name} {sql_type}"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_queue_item_host ON queue_item (host)"))


MIGRATIONS: dict[int, Callable[[Any], None]] = {
    # 1: the first schema; created by create_all, nothing to move.
    2: _v2_run_axes,
    3: _v3_card_ledger,
    4: _v4_events_resume,
    5: _v5_leases_hosts,
    # 6: the slurm_job table (issue 15): new, so create_all makes it after the steps; no run row moves.
}
