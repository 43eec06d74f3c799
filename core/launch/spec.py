"""`JobSpec`: everything the supervisor needs to start and judge a job, handed over in one file.

The launcher renders the job in the caller's process and writes this spec to the run directory
(`launch.json`, mode 0600: it holds the unmasked environment); the detached supervisor reads it
back. Reading validates every field, so a spec from another version or a damaged file is one clear
error instead of defaults guessed at each use. The spec also names the store the supervisor
records into: a supervisor never finds its database through inherited environment variables.
(Named JobSpec, not LaunchSpec: that is the recipe's `[launch]` section.)
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

SPEC_FILE = "launch.json"


class SpecError(ValueError):
    """A launch spec that cannot be used as it is."""


@dataclass(frozen=True)
class JobSpec:
    argv: tuple[str, ...]
    env: dict[str, str]  # added to the supervisor's environment for the job
    cwd: str | None
    device: str
    visible_devices: tuple[int, ...]
    retries: int
    world_size: int
    python: str  # the interpreter the job's Python entry points run with
    output_dir: str | None  # where the job writes results files (LLaMA-Factory's trainer_log.jsonl)
    # The builtin trainer hands its config to deepspeed.initialize first thing, which runs the
    # same DeepSpeedConfig checks; a separate pass would only add seconds to every start.
    validate_ds_config: bool
    store_url: str
    # Issue 18 (optional in the file: a spec written before them reads with these defaults).
    # The stall watchdog (recipe [watch]; README "Long runs").
    stall_factor: float = 10.0
    stall_floor_s: float = 600.0
    stall_startup_s: float = 900.0
    on_stall: str = "warn"
    stall_grace_s: float = 120.0
    resume: bool = False  # [launch] resume: retries resume from the newest checkpoint as a new run
    # Alert targets (Apprise URLs, unmasked: this file is 0600) and the events that send.
    alert_urls: tuple[str, ...] = field(default_factory=tuple)
    alert_on: tuple[str, ...] = field(default_factory=tuple)
    # Issue 15: "slurm" when the job is the Slurm follower (core/launch/slurm/follow.py): the nodes'
    # samplers record telemetry, and Slurm's end state maps the outcome.
    scheduler: str = "local"
    # Issue 14: the queue claim the run was made by. The supervisor writes through
    # `store.fenced(run_id, claim_token)`, so once another host takes the claim over it can write nothing;
    # `host` is the server it runs on, whose heartbeat the supervisor renews. None: a run started directly.
    claim_token: int | None = None
    host: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["visible_devices"] = list(self.visible_devices)
        data["alert_urls"] = list(self.alert_urls)
        data["alert_on"] = list(self.alert_on)
        return data

    def write(self, run_dir: Path) -> Path:
        path = run_dir / SPEC_FILE
        path.write_text(json.dumps(self.to_json(), indent=2))
        path.chmod(0o600)
        return path

    @classmethod
    def from_json(cls, data: Any) -> JobSpec:
        if not isinstance(data, dict):
            raise SpecError("not a JSON object")
        missing = [k for k in _REQUIRED if k not in data]
        extra = sorted(set(data) - set(_FIELDS))
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(extra)}"] if extra else [])
            raise SpecError("; ".join(parts))
        argv = data["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise SpecError("argv: a non-empty list of strings expected")
        env = data["env"]
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise SpecError("env: an object of strings expected")
        devices = data["visible_devices"]
        if not isinstance(devices, list) or not all(_is_int(d) for d in devices):
            raise SpecError("visible_devices: a list of integers expected")
        for key in ("retries", "world_size"):
            if not _is_int(data[key]) or data[key] < 0:
                raise SpecError(f"{key}: a non-negative integer expected")
        for key in ("device", "python", "store_url"):
            if not isinstance(data[key], str) or not data[key]:
                raise SpecError(f"{key}: a non-empty string expected")
        for key in ("cwd", "output_dir"):
            if data[key] is not None and not isinstance(data[key], str):
                raise SpecError(f"{key}: a string or null expected")
        if not isinstance(data["validate_ds_config"], bool):
            raise SpecError("validate_ds_config: true or false expected")
        extras = _optional(data)
        return cls(argv=tuple(argv), env=dict(env), cwd=data["cwd"], device=data["device"],
                   visible_devices=tuple(devices), retries=data["retries"], world_size=data["world_size"],
                   python=data["python"], output_dir=data["output_dir"],
                   validate_ds_config=data["validate_ds_config"], store_url=data["store_url"], **extras)

    @classmethod
    def read(cls, run_dir: Path) -> JobSpec:
        path = run_dir / SPEC_FILE
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise SpecError(f"{path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise SpecError(f"{path}: not JSON: {exc}") from None
        try:
            return cls.from_json(data)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_FIELDS = tuple(JobSpec.__dataclass_fields__)
_REQUIRED = tuple(k for k, f in JobSpec.__dataclass_fields__.items()
                  if f.default is MISSING and f.default_factory is MISSING)


def _optional(data: dict[str, Any]) -> dict[str, Any]:
    """The optional fields present in `data`, checked."""
    out: dict[str, Any] = {}
    for key in ("stall_factor", "stall_floor_s", "stall_startup_s", "stall_grace_s"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SpecError(f"{key}: a non-negative number expected")
            out[key] = float(value)
    if "on_stall" in data:
        if data["on_stall"] not in ("warn", "stop"):
            raise SpecError("on_stall: 'warn' or 'stop' expected")
        out["on_stall"] = data["on_stall"]
    if "resume" in data:
        if not isinstance(data["resume"], bool):
            raise SpecError("resume: true or false expected")
        out["resume"] = data["resume"]
    if "scheduler" in data:
        if data["scheduler"] not in ("local", "slurm"):
            raise SpecError("scheduler: 'local' or 'slurm' expected")
        out["scheduler"] = data["scheduler"]
    if data.get("claim_token") is not None:
        if not _is_int(data["claim_token"]) or data["claim_token"] < 0:
            raise SpecError("claim_token: a non-negative integer or null expected")
        out["claim_token"] = data["claim_token"]
    if data.get("host") is not None:
        if not isinstance(data["host"], str) or not data["host"]:
            raise SpecError("host: a non-empty string or null expected")
        out["host"] = data["host"]
    for key in ("alert_urls", "alert_on"):
        if key in data:
            value = data[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"{key}: a list of strings expected")
            out[key] = tuple(value)
    return out
