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
from dataclasses import asdict, dataclass
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        data["visible_devices"] = list(self.visible_devices)
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
        missing = [k for k in _FIELDS if k not in data]
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
        return cls(argv=tuple(argv), env=dict(env), cwd=data["cwd"], device=data["device"],
                   visible_devices=tuple(devices), retries=data["retries"], world_size=data["world_size"],
                   python=data["python"], output_dir=data["output_dir"],
                   validate_ds_config=data["validate_ds_config"], store_url=data["store_url"])

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
