"""What quantised LoRA (QLoRA) a recipe may ask for, checked when the recipe is read.

Two ways to a quantised base: `method.quant_bits = 4 | 8` has bitsandbytes quantise the weights at
load; `model.quantization = "gptq" | "awq"` names a checkpoint published already quantised. Either
way only LoRA adapters train. bitsandbytes has no Ascend kernels (LLaMA-Factory's QLoRA on 910B fails
at load or in the first matmul), so an NPU recipe asking for it is refused here, with what to do
instead, rather than after the model has been read onto eight cards.
"""

from __future__ import annotations

from zerodeck.core.recipe.model import Recipe

# Grid axes that can make a member's quantisation impossible.
QUANT_AXES = ("hardware.device", "method.quant_bits", "method.kind", "model.quantization")

NPU_BNB = ("bitsandbytes quantisation does not run on Ascend NPUs (no NPU kernels); "
           "use ZeRO-3 to spread the 16-bit weights (zero.stage = 3, offload if needed) or a smaller model")


def quant_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """(field, message) for each quantisation the recipe cannot have; empty when it is fine."""
    bits, prequant = recipe.method.quant_bits, recipe.model.quantization
    problems: list[tuple[str, str]] = []
    if bits is not None and prequant is not None:
        problems.append(("method.quant_bits", f"the model is already quantised ({prequant}); drop quant_bits"))
    if (bits is not None or prequant is not None) and recipe.method.kind != "lora":
        field = "method.quant_bits" if bits is not None else "model.quantization"
        problems.append((field, f"quantised weights cannot be trained: needs method.kind = 'lora', "
                                f"not {recipe.method.kind!r}"))
    if bits is not None and recipe.hardware.device == "npu":
        problems.append(("method.quant_bits", NPU_BNB))
    return problems
