"""The validated shape of a recipe (README.md, "Recipes"). Unknown keys and wrong types are errors.

Strict pydantic models, so a typo such as `stgae = 3` or `cards = "8"` is caught before a run is
launched instead of silently falling back to a default on an 8-card machine.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _nul_free(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" not in value
    if isinstance(value, dict):
        return all(_nul_free(k) and _nul_free(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_nul_free(v) for v in value)
    return True


class _Strict(BaseModel):
    # allow_inf_nan=False: `epochs = inf` or `lr = nan` would pass `gt=0` (or slip past comparisons)
    # and only surface as a nonsense launch.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        # A NUL cannot reach exec(), the environment or a path: refuse it here, not at launch.
        if not _nul_free(v):
            raise ValueError("contains a NUL character")
        return v


class _Section(_Strict):
    pass


def _env_key(key: str) -> str:
    if not ENV_KEY_RE.match(key):
        raise ValueError(f"{key!r} is not an environment variable name (letters, digits, '_'; not a digit first)")
    return key


def _argument(arg: str) -> str:
    if not arg:
        raise ValueError("empty argument (an empty program name or argument is never what was meant)")
    return arg


def _env_value(value: str) -> str:
    if "\0" in value:
        raise ValueError("contains a NUL character")
    return value


EnvKey = Annotated[str, AfterValidator(_env_key)]
EnvValue = Annotated[str, AfterValidator(_env_value)]  # checked per key, so the problem names the variable
Argument = Annotated[str, AfterValidator(_argument)]


class ModelSpec(_Section):
    name: str | None = None
    path: str | None = None
    # A checkpoint already quantised (GPTQ / AWQ, 4-bit as published): loaded as it is, LoRA on top.
    quantization: Literal["gptq", "awq"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ModelSpec:
        if not self.name and not self.path:
            raise ValueError("give a registry `name` or a local `path` with a config.json")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return (self.path or "").rstrip("/").rsplit("/", 1)[-1]


class MethodSpec(_Section):
    kind: Literal["lora", "full", "freeze"] = "lora"
    rank: int = Field(8, ge=1, le=4096)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target: str | list[str] = "all"
    freeze_trainable_layers: int = Field(2, ge=1)
    # QLoRA: the base weights quantised at load by bitsandbytes (NF4 at 4, LLM.int8 at 8).
    quant_bits: Literal[4, 8] | None = None


class ZeroSpec(_Section):
    stage: int = Field(0, ge=0, le=3)
    offload: Literal["none", "optimizer", "all"] = "none"

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> ZeroSpec:
        if self.offload == "all" and self.stage != 3:
            raise ValueError("offload = 'all' (parameters too) needs stage = 3")
        if self.offload == "optimizer" and self.stage == 0:
            raise ValueError("offload = 'optimizer' needs stage 1, 2 or 3")
        return self


class DataSpec(_Section):
    path: str | None = None
    dataset: str | None = None  # a LLaMA-Factory dataset_info.json name
    dataset_dir: str | None = None
    format: Literal["alpaca", "sharegpt", "text"] = "alpaca"
    samples: int | None = Field(None, ge=1)
    template: str | None = None


class TrainSpec(_Section):
    micro_batch: int = Field(1, ge=1)
    grad_accum: int = Field(1, ge=1)
    seq_len: int = Field(2048, ge=8)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    lr: float = Field(1e-4, gt=0)
    grad_ckpt: bool = True
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    attn: Literal["sdpa", "flash", "eager"] = "sdpa"
    seed: int = 42
    logging_steps: int = Field(1, ge=1)

    @field_validator("epochs", "lr", mode="before")
    @classmethod
    def _int_is_float(cls, v: Any) -> Any:
        # TOML `epochs = 3` is an int; strict mode would refuse it for a float field.
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class HardwareSpec(_Section):
    device: Literal["npu", "cuda", "cpu"] = "npu"
    cards: int = Field(8, ge=1, le=1024)
    card_gb: float = Field(64.0, gt=0)
    devices: list[int] | None = None  # explicit visible device ids; default 0..cards-1

    @field_validator("card_gb", mode="before")
    @classmethod
    def _int_is_float(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _devices_match(self) -> HardwareSpec:
        if self.devices is not None and len(self.devices) != self.cards:
            raise ValueError(f"devices lists {len(self.devices)} ids but cards = {self.cards}")
        return self


class LaunchSpec(_Section):
    backend: Literal["llamafactory", "swift", "deepspeed", "torchrun", "command", "builtin"] = "llamafactory"
    script: str | None = None
    args: list[str] = Field(default_factory=list)
    argv: list[Argument] | None = None  # the `command` backend's full argv; placeholders like {ds_config}
    env: dict[EnvKey, EnvValue] = Field(default_factory=dict)
    retries: int = Field(0, ge=0, le=10)
    # With retries: a run that ends in a comm error or is stopped stalled is resumed from its newest
    # complete checkpoint as a new run (never after an OOM, which would only fail again).
    resume: bool = False
    workdir: str | None = None
    output_dir: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _backend_needs(self) -> LaunchSpec:
        if self.backend == "command" and not self.argv:
            raise ValueError("backend 'command' needs `argv`, a list of strings")
        if self.backend in ("deepspeed", "torchrun") and not self.script:
            raise ValueError(f"backend {self.backend!r} needs `script`")
        return self


class WatchSpec(_Section):
    """The stall watchdog (README "Long runs"). A run is stalled when its step counter has not moved for
    max(stall_factor x the median step time, stall_floor_s); before its first step, when neither its log
    nor its cards (memory, utilisation) have shown a sign of life for stall_startup_s."""

    # 10x the median step: an eval pass or a checkpoint save takes a few steps' time, a hang forever.
    stall_factor: float = Field(10.0, ge=1.0)
    # 10 min: longer than a checkpoint save of a 7B-70B model to local disk, and well inside HCCL's
    # default execution time-out (HCCL_EXEC_TIMEOUT, 1800 s), so a hung collective is caught 20 min early.
    stall_floor_s: float = Field(600.0, gt=0)
    # 15 min of silence before the first step: model loading prints or fills memory as it goes.
    stall_startup_s: float = Field(900.0, gt=0)
    on_stall: Literal["warn", "stop"] = "warn"  # stopping frees the cards; opt in, it ends the run
    # After `stalled`, how long a run may still recover before on_stall = "stop" ends it.
    stall_grace_s: float = Field(120.0, ge=0)

    @field_validator("stall_factor", "stall_floor_s", "stall_startup_s", "stall_grace_s", mode="before")
    @classmethod
    def _int_is_float(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class AlertsSpec(_Section):
    """Per-recipe override of `$ZERODECK_HOME/config.toml` `[alerts]` (a key given here replaces it)."""

    urls: list[str] | None = None
    on: list[Literal["finished", "stalled", "lost"]] | None = None


SBATCH_RE = re.compile(r"^[A-Za-z0-9:_./,=+@%-]+$")


class ClusterSpec(_Section):
    """Where the run executes beyond this server (README "Multi-node runs through Slurm").

    `scheduler = "local"` (the default) runs on this machine; `"slurm"` submits one batch job of
    `nodes` nodes, each with `hardware.cards` cards. `gres` defaults to `gpu:<cards>` (Slurm declares
    Ascend NPUs as `gpu` GRES too); `extra` holds further `#SBATCH` options, one per item."""

    scheduler: Literal["local", "slurm"] = "local"
    nodes: int = Field(1, ge=1, le=4096)
    partition: str | None = None
    time: str | None = None  # Slurm's --time: "MM", "HH:MM:SS", "D-HH:MM"
    account: str | None = None
    qos: str | None = None
    gres: str | None = None
    extra: list[str] = Field(default_factory=list)
    network_interface: str | None = None  # HCCL / NCCL / GLOO_SOCKET_IFNAME on every node

    @field_validator("partition", "account", "qos", "gres", "network_interface")
    @classmethod
    def _one_word(cls, v: str | None) -> str | None:
        # Each lands on an #SBATCH line or in an environment variable of the batch script.
        if v is not None and not SBATCH_RE.match(v):
            raise ValueError(f"{v!r}: one word of letters, digits and :_./,=+@%- expected")
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(\d+-)?\d+(:\d{1,2}){0,2}$", v):
            raise ValueError(f"{v!r}: a Slurm time such as '30', '02:00:00' or '1-12:00' expected")
        return v

    @field_validator("extra")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        for item in v:
            if "\n" in item or "\r" in item or not item.startswith("-"):
                raise ValueError(f"{item!r}: one sbatch option per item, such as '--exclusive'")
        return v

    @model_validator(mode="after")
    def _nodes_need_slurm(self) -> ClusterSpec:
        if self.nodes > 1 and self.scheduler != "slurm":
            raise ValueError(f"nodes = {self.nodes} needs scheduler = \"slurm\"")
        return self


class Recipe(_Strict):

    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    model: ModelSpec
    method: MethodSpec = MethodSpec()
    zero: ZeroSpec = ZeroSpec()
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    hardware: HardwareSpec = HardwareSpec()
    launch: LaunchSpec = LaunchSpec()
    watch: WatchSpec = WatchSpec()
    alerts: AlertsSpec = AlertsSpec()
    cluster: ClusterSpec = ClusterSpec()
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r}: use letters, digits, '.', '_', '+' and '-'")
        return v

    @property
    def is_grid(self) -> bool:
        return bool(self.grid)

    def summary(self) -> dict[str, Any]:
        """The `recipes list` contract row (ARCHITECTURE.md, "Contracts"), minus the path."""
        return {
            "name": self.name,
            "model": self.model.label,
            "method": self.method.kind,
            "zero_stage": self.zero.stage,
            "offload": self.zero.offload,
            "cards": self.hardware.cards,
            "device": self.hardware.device,
            "data_samples": self.data.samples,
            "seq_len": self.train.seq_len,
            "micro_batch": self.train.micro_batch,
            "launcher": self.launch.backend,
        }
