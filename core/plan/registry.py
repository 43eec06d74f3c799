"""Architectures of the models zerodeck plans for, as their config.json files state them.

The numbers are copied from each model's Hugging Face `config.json` (Qwen/Qwen2.5-*, Qwen/Qwen3-*), so parameter
counts computed from them match the published totals exactly. A local directory with a config.json
is read the same way, which covers any Qwen2/LLaMA-shaped model the registry does not ship.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelArch:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool = True
    head_dim_override: int | None = None  # Qwen3 sets head_dim independently of hidden / heads
    qk_norm: bool = False  # Qwen3 normalises q and k per head

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    def layer_params(self) -> int:
        h, kv, qd = self.hidden, self.kv_heads * self.head_dim, self.q_dim
        attn = h * qd + 2 * h * kv + qd * h  # q, k, v, o
        if self.qkv_bias:
            attn += qd + 2 * kv
        if self.qk_norm:
            attn += 2 * self.head_dim
        mlp = 3 * h * self.intermediate  # gate, up, down
        norms = 2 * h
        return attn + mlp + norms

    def params(self) -> int:
        embed = self.vocab * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return embed + head + self.layers * self.layer_params() + self.hidden  # final norm

    @property
    def params_b(self) -> float:
        return self.params() / 1e9


def _q25(size: str, h: int, n: int, heads: int, kv: int, inter: int, vocab: int, tied: bool) -> ModelArch:
    return ModelArch(f"Qwen2.5-{size}", h, n, heads, kv, inter, vocab, tied)


def _q3(size: str, h: int, n: int, heads: int, kv: int, inter: int, tied: bool) -> ModelArch:
    return ModelArch(f"Qwen3-{size}", h, n, heads, kv, inter, 151936, tied, qkv_bias=False,
                     head_dim_override=128, qk_norm=True)


REGISTRY: dict[str, ModelArch] = {
    m.name: m
    for m in [
        _q25("0.5B", 896, 24, 14, 2, 4864, 151936, True),
        _q25("1.5B", 1536, 28, 12, 2, 8960, 151936, True),
        _q25("3B", 2048, 36, 16, 2, 11008, 151936, True),
        _q25("7B", 3584, 28, 28, 4, 18944, 152064, False),
        _q25("14B", 5120, 48, 40, 8, 13824, 152064, False),
        _q25("32B", 5120, 64, 40, 8, 27648, 152064, False),
        _q25("72B", 8192, 80, 64, 8, 29568, 152064, False),
        # Qwen3 dense (config.json of Qwen/Qwen3-*): head_dim 128, no qkv bias, q/k norms; the
        # non-embedding counts reproduce the model cards (0.44B, 1.4B, 3.6B, 6.95B, 13.2B, 31.2B).
        _q3("0.6B", 1024, 28, 16, 8, 3072, True),
        _q3("1.7B", 2048, 28, 16, 8, 6144, True),
        _q3("4B", 2560, 36, 32, 8, 9728, True),
        _q3("8B", 4096, 36, 32, 8, 12288, False),
        _q3("14B", 5120, 40, 40, 8, 17408, False),
        _q3("32B", 5120, 64, 64, 8, 25600, False),
        # The built-in trainer's tiny causal LM (core/launch/builtin): what the CPU demo trains.
        ModelArch("zerodeck-tiny", 64, 2, 4, 4, 256, 512, True, qkv_bias=False),
    ]
}

_ALIASES = {name.lower(): name for name in REGISTRY}


class UnknownModel(LookupError):
    def __init__(self, name: str) -> None:
        close = difflib.get_close_matches(name.lower(), list(_ALIASES), n=1, cutoff=0.5)
        hint = f" (did you mean {_ALIASES[close[0]]}?)" if close else ""
        super().__init__(f"unknown model {name!r}{hint}")


# Instruct and base checkpoints share their architecture (the same config.json shapes).
_VARIANTS = ("-instruct", "-base", "-chat")


def lookup(name: str) -> ModelArch:
    key = name.lower().removeprefix("qwen/")
    for suffix in _VARIANTS:
        key = key.removesuffix(suffix)
    if key in _ALIASES:
        return REGISTRY[_ALIASES[key]]
    raise UnknownModel(name)


def from_config(path: str | Path) -> ModelArch:
    """Read a local model directory (or a config.json path) into a ModelArch."""
    p = Path(path)
    cfg_path = p / "config.json" if p.is_dir() else p
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{p}: no config.json")
    cfg: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    heads = int(cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim")
    return ModelArch(
        name=p.name if p.is_dir() else p.parent.name,
        hidden=int(cfg["hidden_size"]),
        layers=int(cfg["num_hidden_layers"]),
        heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        intermediate=int(cfg["intermediate_size"]),
        vocab=int(cfg["vocab_size"]),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") in ("qwen2",))),
        head_dim_override=int(head_dim) if head_dim else None,
        qk_norm=cfg.get("model_type") in ("qwen3",),
    )
