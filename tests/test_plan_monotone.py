"""ZeRO stages and offload never cost more on the card, for every registry model (issue 16).

ZeRO-1 partitions the optimizer states, ZeRO-2 also the gradients, ZeRO-3 also the parameters
(Rajbhandari et al. 2020, §5), and offload moves states off the card: for the same run on 8 ranks
the figure that must fit can only fall. The elastic allocator cache is left out on purpose (see
`core/plan/memory.py`, "headroom").
"""

from __future__ import annotations

import itertools

import pytest
from zerodeck.core.plan.memory import PlanInput, estimate
from zerodeck.core.plan.registry import REGISTRY

RUNS = list(itertools.product(["lora", "full", "freeze"], [512, 2048], [True, False], [1, 4]))


@pytest.mark.parametrize("model", sorted(REGISTRY))
def test_stages_and_offload_are_monotone(model: str) -> None:
    arch = REGISTRY[model]
    for method, seq, ckpt, mb in RUNS:
        for cards, device in ((8, "npu"), (8, "cuda"), (64, "cuda")):
            base = PlanInput(arch=arch, method=method, seq_len=seq, grad_ckpt=ckpt, micro_batch=mb,  # type: ignore[arg-type]
                             cards=cards, device=device)  # type: ignore[arg-type]
            where = f"{model} {method} seq {seq} ckpt {ckpt} mb {mb} on {cards} {device}"
            z = [estimate(base.with_(stage=s)).hard for s in range(4)]
            assert z[1] <= z[0] + 1e-9, f"ZeRO-1 above ZeRO-0: {where}: {z}"
            assert z[2] <= z[1] + 1e-9, f"ZeRO-2 above ZeRO-1: {where}: {z}"
            assert z[3] <= z[2] + 1e-9, f"ZeRO-3 above ZeRO-2: {where}: {z}"
            for s in (1, 2, 3):
                off = estimate(base.with_(stage=s, offload="optimizer")).hard
                assert off <= z[s] + 1e-9, f"optimizer offload above none at ZeRO-{s}: {where}"
            opt3 = estimate(base.with_(stage=3, offload="optimizer")).hard
            assert estimate(base.with_(stage=3, offload="all")).hard <= opt3 + 1e-9, where


def test_lora_under_deepspeed_carries_a_trainable_sized_bucket() -> None:
    # DeepSpeed allocates reduce_bucket_size elements at each backward; zerodeck renders it as the
    # trainable count, so a LoRA run's bucket is MiB, not the 1 GiB of the 5e8 default.
    inp = PlanInput(arch=REGISTRY["Qwen2.5-7B"], method="lora", stage=2, cards=8)
    rendered, default = estimate(inp), estimate(inp.with_(reduce_bucket=5e8))
    assert rendered.buffers < 0.1 < default.buffers
    assert estimate(inp.with_(reduce_bucket=5e8, overlap_comm=True)).buffers == pytest.approx(2 * default.buffers)
