"""Per-card peak memory of a fine-tuning run, term by term, before anything is launched.

Why a model and not a rule of thumb: "14B x 2 bytes" misses the optimizer under each ZeRO stage, the
logits of a 152k vocabulary (which dominate at long sequences), the runtime the device already
uses and the allocator's caching. Every term below is physics with its source; the few fitted
constants (marked FIT) were fitted once against the published measurements in
`tests/fixtures/memory/measured-dev.csv` (see `bench/bench_plan_accuracy.py`), never per row.

Terms (bytes per card; P parameters, T trainable, N data-parallel ranks, t = micro_batch x seq_len):

- weights: frozen and trainable parameters in the compute dtype (2 bytes bf16/fp16, 4 fp32), whole
  on every card for ZeRO 0/1/2, 1/N under ZeRO-3, none with parameter offload (ZeRO paper,
  Rajbhandari et al. 2020, §5; DeepSpeed docs "ZeRO-3 Offload"). Pre-quantised GPTQ bases store
  the linear layers at bits/8 bytes plus group scales and zeros (group 128 -> ~3 %), the rest in
  16 bit. bitsandbytes bases (quantised at load, NF4/int8) differ in three ways: one fp32 absmax
  per 64-weight block (bitsandbytes `quantize_4bit`, 0.5 bit per weight); PEFT's
  `prepare_model_for_kbit_training` upcasts every non-quantised parameter (embeddings, lm_head,
  norms) to fp32 for bitsandbytes models but not for GPTQ ones; and `MatMul4Bit` dequantises each
  layer's weights to 16 bit for its matmuls (one layer's worth live in the backward pass).
  The fp32 embedding output also makes the residual stream fp32, so checkpointed layer inputs
  cost 4 bytes, and autocast's 16-bit copy of the fp32 lm_head is saved for its backward, so it
  lives through the loss phase (torch autocast casts per op; F.linear saves its weight).
- gradients: one 16-bit gradient per trainable parameter; 1/N from ZeRO-2 (ZeRO paper §5.2).
- optimizer: mixed precision Adam keeps an fp32 master copy and two fp32 moments, 12 bytes per
  trainable parameter (ZeRO paper §3.1, "K = 12"); 1/N from ZeRO-1; on the host with optimizer
  offload (ZeRO-Offload, Ren et al. 2021). DeepSpeed's step also upcasts the gradient partition to
  fp32 (4 bytes per partitioned parameter; at ZeRO-3 one sub_group_size of 1e9 at a time), a
  step-phase term. LoRA adapters are trained in fp32 (PEFT makes them in fp32 and moves them to
  the base layer's device only, `LoraLayer.update_layer`; PEFT >= 0.12 upcasts them on purpose,
  `autocast_adapter_dtype=True`; LLaMA-Factory upcasts trainable parameters), so they cost 16
  bytes each whatever the base dtype, in a pure-16-bit model too.
  "Pure" 16-bit training (HF Trainer without DeepSpeed, weights loaded in bf16) keeps no master
  copy: 2 + 2 + 4 bytes, plus the temporary of torch's foreach Adam step (torch.optim.adam
  `_multi_tensor_adam`: `_foreach_sqrt` allocates a full copy). That temporary is one copy of
  whatever trains without DeepSpeed, in its own dtype: fp32 adapters (4 bytes), and the 16-bit
  modules_to_save copies of embed_tokens / lm_head (PEFT deep-copies the 16-bit module): for a
  base model whose embeddings train it is a GiB, not noise. The Qwen README's LoRA series (no
  DeepSpeed, bf16) sits 0.8 / 1.3 / 1.9 GiB above 16-bit adapters for 1.8B / 7B / 14B at 256
  tokens: their r64 adapters' 10 more bytes each in fp32 (0.6 / 1.3 / 2.1 GiB).
  Under DeepSpeed (ZeRO 1-3) the engine casts the whole module to bf16/fp16 before training
  (`DeepSpeedEngine._configure_distributed_model`: `self.module.bfloat16()`), adapters included:
  they then cost 2 (weight) + 2 (gradient, 1/N from ZeRO-2) + 12 (fp32 master and moments, 1/N
  from ZeRO-1) bytes, like any DeepSpeed-trained parameter. Only without DeepSpeed (HF Trainer with
  autocast, ZeRO-0) do they stay fp32: 4 + 4 + 8.
- LoRA trainable count: rank x (in + out) for every targeted linear (Hu et al. 2021; PEFT).
- activations: with gradient checkpointing (HF per-decoder-layer checkpointing) each layer keeps
  its input, t x h x 2 bytes, and the backward pass recomputes one layer at a time; without it
  each layer keeps everything its backward needs. Per token and layer, counted from what each op
  of an HF Qwen2/LLaMA decoder layer saves for backward (autograd saves an input only when the
  other input needs a gradient): each RMSNorm keeps its fp32 upcast (4 h) and its 16-bit output,
  the input of the next linears (2 h): 12 h for the two; attention keeps the RoPE'd q and k and v
  (sdpa / flash save their inputs: 2 q_dim + 4 kv_dim), its output (2 q_dim) and the reshaped copy
  o_proj saves (2 q_dim); the SwiGLU keeps gate, silu(gate), up and their product (8 I). Total
  12 h + 6 q_dim + 4 kv_dim + 8 I bytes (Korthikanti et al. 2022 §4 derive the same shape, 34 h
  for a GPT block). An earlier FIT of 12 h + 8 I + 4 kv_dim left out the attention's three
  q_dim-wide tensors. LoRA dropout (p > 0) adds, per targeted linear, the dropped copy of its
  input (2 bytes) and the boolean mask (1 byte) that PEFT's `lora_A(dropout(x))` keeps. Eager
  attention also stores the softmax of the scores, heads x seq^2 per sequence at 6 bytes (fp32
  softmax + its 16-bit cast, HF `eager_attention_forward`); sdpa / flash never materialise it (Dao et al. 2022).
- logits and cross-entropy: t x vocab elements; the allocated peak (`logits`) and what the caching
  allocator keeps reserved for the same fixed-shape step (`headroom`), traced block by block
  (PyTorch CUDACachingAllocator: a freed block serves a later request of its size or smaller,
  best fit; blocks of separate segments never merge). Current transformers (>= 4.46,
  `ForCausalLMLoss`) computes `logits.float()` inside the loss and shifts the labels, not the
  logits: the forward holds the 16-bit logits, the fp32 upcast and the log-softmax (10 bytes);
  HF Trainer's `compute_loss` drops the model output before `backward`, and the upcast is not
  saved (the log-softmax saves its output), so the backward holds the saved log-softmax, the
  dense fp32 gradient nll_loss writes (in the upcast's freed block) and the log-softmax gradient
  (a new block): 12 bytes, the peak; the 16-bit logits' block stays cached (2 bytes). Remote
  code that copies `shift_logits = lm_logits[..., :-1, :].contiguous()` and calls
  CrossEntropyLoss on the 16-bit copy (Qwen v1's modeling_qwen.py, `loss_impl="shift_copy"`)
  under autocast, which runs cross_entropy in fp32 (torch autocast op list), allocates the
  logits, the copy, the fp32 cast and the log-softmax: 2 + 2 + 4 + 4 = 12 bytes; in the backward
  the log-softmax gradient fits none of the freed blocks (two of 2 bytes, the cast's taken by the
  nll gradient), so 4 more bytes stay reserved: 16 in all (an earlier 14 assumed an upcast in
  the model, which Qwen v1 does not do). For Qwen's 152k vocabulary this is 4 GiB at 2048 tokens,
  more than a 7B's checkpointed activations. The same code under DeepSpeed, which manages
  precision itself and runs no autocast (HF Trainer: "deepspeed ... manage their own half
  precision"), keeps the whole loss in 16 bit: the copy, the log-softmax and its gradient, 6
  bytes at the peak, plus the full-length block the slice's gradient needs (no freed block of
  t - 1 rows holds t rows): 8 reserved. The Qwen README's Q-LoRA series (fp16, DeepSpeed) grows by
  ~9 bytes per vocab entry and token from 4k to 8k tokens, not 14. In fp32 (the builtin trainer:
  fp32 logits, the contiguous copy `logits[:, :-1].reshape(...)` makes, the log-softmax) 12 bytes
  at the peak and the log-softmax gradient's block cached (4).
  Peak memory is the larger of the loss phase (logits live) and the backward phase (one layer's
  recomputed activations and their gradients), not their sum.
- buffers: ZeRO-1/2 allocate the gradient bucket (`ipg_buffer`) at every backward with
  contiguous_gradients: `reduce_bucket_size` elements in the compute dtype, twice with
  overlap_comm (DeepSpeed `stage_1_and_2.py: backward`, `torch.empty(int(self.reduce_bucket_size))`
  whatever the trainable count). The all-gather after the step writes into the existing flat
  16-bit groups. zerodeck renders reduce_bucket_size = min(5e8, trainable parameters) and
  overlap_comm false (`core/launch/ds_config.py`), so a LoRA run does not carry a 1 GiB bucket
  for 20M adapter weights; ZeRO-3 gathers whole layers (the current one and the prefetched one) and the lm_head at
  the loss (stage3_prefetch_bucket_size, stage3_max_live_parameters);
  DDP at ZeRO-0 keeps a flat copy of the gradients in its buckets (torch DDP docs).
- ZeRO stages and offload are monotone by construction: each stage partitions a superset of what
  the previous one does (ZeRO paper §5: P_os, P_os+g, P_os+g+p) and a bucket is never larger than
  the DDP bucket copy it replaces (trainable-sized), so for the same run stage 1 <= 0, 2 <= 1,
  3 <= 2 and offload <= no offload on the card (`tests/test_plan_monotone.py`, every registry
  model).
- runtime: what the device uses before the first tensor: an idle Ascend 910B already shows ~3 GB in
  npu-smi (the CANN runtime; a 910B4 with no process shows 2871 MB of HBM in use); a CUDA context
  ~1 GiB as nvidia-smi shows it (PyTorch CUDA semantics notes; FIT 1.0). On the CPU a "card" is a
  rank process and its RSS: Python with torch, DeepSpeed and gloo loaded is ~0.4 GiB before the
  model (the demo trainer's ranks, measured here with psutil). Zero when the figure wanted is
  torch's max_memory_reserved.
- headroom: the caching allocator keeps freed blocks (PyTorch / torch_npu caching allocator):
  the fixed-shape loss blocks above, and with dynamic padding (LLaMA-Factory's and ms-swift's
  collators pad to the longest in each batch) blocks of other lengths: a later, longer batch
  finds no cached block big enough and takes new segments, the shorter ones stay cached. Those
  are about DYNAMIC_FRAG = 2 more loss-phase sets (allocated + cached bytes) of a typical batch
  (FIT; ms-swift's max_memory_reserved at 512 to 8192 tokens on one dataset: 44-49 bytes per
  vocab entry and token up to 2048, falling to 34 and 27.5 at 4096 and 8192, the same for 1.8B,
  7B and 14B). A typical batch is micro_batch x the data's median length when the data is known
  (`typical_len`, token p50 of the data inspection), else seq_len, the worst case. This cache is
  elastic: the allocator frees it and retries before reporting OOM, so it never makes a run fail
  on its own (`hard` leaves it out). Long-lived tensors created after the first loss phase are
  carved out of those cached blocks (the allocator splits large free blocks): without
  DeepSpeed, torch's Adam creates its moments at the first step(), when every block of the first
  batch is free, so at ZeRO-0 they fill the fragments instead of adding to them; the gradients
  appear during the first backward, beside that batch's own blocks, and add (ms-swift: full
  fine-tuning of Qwen-1.8B at 8k tokens reserves 1.9 GiB more than LoRA, not the ~10 GiB its
  moments and gradients take). DeepSpeed allocates its partitions at initialisation, before any
  logits exist. A further 10 % of the static terms covers what a card monitor sees beyond torch's
  blocks: block rounding, small blocks, the launcher's and libraries' own buffers (FIT). A figure
  read as torch's max_memory_reserved (`reserved_only`) gets none of it: there the states sit in
  blocks of their own size (ms-swift's excess over the states is the same within 5 % for 1.8B,
  7B and 14B at each length, so no term grows with the parameters).
- host RAM per node: offloaded optimizer states (12 bytes per trainable parameter, plus a 4-byte fp32
  gradient copy) and offloaded 16-bit parameters, pinned (DeepSpeed offload docs); one 16-bit model
  copy while checkpoints load (safetensors shards are memory-mapped and shared by the ranks);
  ~2 GiB per rank process (python, torch, the device runtime).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from zerodeck.core.plan.registry import ModelArch

GIB = 1024**3

# FIT constants (see module docstring and bench/bench_plan_accuracy.py).
# Bytes per token per layer saved for backward, times hidden / q_dim / intermediate / kv dim (docstring).
ACT_H, ACT_Q, ACT_I, ACT_KV = 12.0, 6.0, 8.0, 4.0
EAGER_SCORE_BYTES = 6.0
LOGIT_BYTES = 12.0  # current transformers ForCausalLMLoss, backward peak (see docstring)
LOGIT_BYTES_16 = 6.0  # cross-entropy left in 16 bit: shifted copy, log-softmax, its gradient (2 bytes each)
LOGIT_CACHE_16 = 2.0  # ... and the slice gradient's new full-length block the allocator keeps
DYNAMIC_FRAG = 2.0  # loss-phase sets of a typical batch the allocator keeps cached when lengths vary
STATIC_HEADROOM = 0.10
LOGIT_BYTES_SHIFT_COPY = 12.0  # remote code (Qwen v1) under autocast: logits, shifted copy, fp32 cast, log-softmax
SHIFT_COPY_CACHE = 4.0  # the log-softmax gradient's fp32 block, which no freed 16-bit block can hold
RUNTIME_GIB = {"npu": 3.0, "cuda": 1.0, "cpu": 0.4}
BUCKET_ELEMS = 5e8
SUB_GROUP_ELEMS = 1e9
BNB_UNQUANT_BYTES = 4.0  # fp32 after prepare_model_for_kbit_training
BNB_ABSMAX_BYTES = 4.0 / 64  # one fp32 absmax per 64-weight block
TIGHT_FRACTION = 0.10

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class PlanInput:
    """Everything the memory model reads; `zerodeck.core.plan.verdict.input_from_recipe` builds it."""

    arch: ModelArch
    method: Literal["lora", "full", "freeze"] = "lora"
    lora_rank: int = 8
    lora_target: tuple[str, ...] = LORA_MODULES
    freeze_layers: int = 2
    stage: int = 0
    offload: Literal["none", "optimizer", "all"] = "none"
    cards: int = 8  # per node
    card_gb: float = 64.0
    device: Literal["npu", "cuda", "cpu"] = "npu"
    nodes: int = 1  # `[cluster] nodes`: ZeRO shards over all ranks of all nodes
    micro_batch: int = 1
    seq_len: int = 2048
    grad_ckpt: bool = True
    attn: Literal["sdpa", "flash", "eager"] = "sdpa"
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    # Settings the recipe format does not carry; defaults are what LLaMA-Factory + DeepSpeed do.
    pure_16bit: bool = False  # no fp32 master weights (HF Trainer without DeepSpeed, bf16 weights)
    train_embeddings: bool = False  # LoRA with embed_tokens and lm_head trainable (modules_to_save)
    quant_bits: int | None = None  # QLoRA base weights
    quant_format: Literal["gptq", "bnb"] = "gptq"  # pre-quantised checkpoint, or bitsandbytes at load
    fixed_length: bool = False  # every batch padded to seq_len (no shape-driven fragmentation)
    typical_len: int | None = None  # typical sample length in tokens (data inspection); None: seq_len
    reserved_only: bool = False  # the figure wanted is torch's reserved memory (no runtime context)
    loss_fp32: bool = True  # cross-entropy upcast to fp32 (HF ForCausalLMLoss, or autocast without DeepSpeed)
    loss_impl: Literal["hf", "shift_copy"] = "hf"  # current ForCausalLMLoss, or fp32 logits + shifted copy
    lora_dropout: float = 0.0
    # DeepSpeed ZeRO-1/2 gradient bucket: None is what zerodeck renders (min(5e8, trainable)).
    reduce_bucket: float | None = None
    overlap_comm: bool = False

    def with_(self, **changes: object) -> PlanInput:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class Breakdown:
    """Per-card GiB by term; `total` includes the elastic allocator cache, `hard` does not."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    buffers: float
    runtime: float
    headroom: float
    total: float
    hard: float
    host_gib: float
    trainable_params: int
    total_params: int

    def as_dict(self) -> dict[str, float]:
        keys = ("weights", "gradients", "optimizer", "activations", "logits", "buffers", "runtime",
                "headroom", "total")
        d = asdict(self)
        return {k: round(float(d[k]), 2) for k in keys}


def lora_params(arch: ModelArch, rank: int, target: tuple[str, ...] = LORA_MODULES) -> int:
    """Adapter parameters: rank x (in + out) per targeted linear per layer."""
    h, kv, inter, qd = arch.hidden, arch.kv_heads * arch.head_dim, arch.intermediate, arch.q_dim
    shapes = {"q_proj": (h, qd), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (qd, h),
              "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    per_layer = sum(rank * (i + o) for name, (i, o) in shapes.items() if name in target)
    return per_layer * arch.layers


def trainable_params(inp: PlanInput) -> int:
    a = inp.arch
    if inp.method == "full":
        return a.params()
    if inp.method == "freeze":
        # LLaMA-Factory's freeze tuning trains the last N decoder layers.
        return min(inp.freeze_layers, a.layers) * a.layer_params()
    extra = 0
    if inp.train_embeddings:
        extra = a.vocab * a.hidden * (1 if a.tied_embeddings else 2)
    return lora_params(a, inp.lora_rank, inp.lora_target) + extra


def _weight_bytes(inp: PlanInput) -> float:
    """Bytes of the base model as stored on a card before any sharding."""
    a = inp.arch
    b = 4 if inp.precision == "fp32" else 2
    if inp.quant_bits is None:
        return a.params() * b
    embed = a.vocab * a.hidden * (1 if a.tied_embeddings else 2)
    linear = a.params() - embed
    if inp.quant_format == "bnb":
        # PEFT's prepare_model_for_kbit_training upcasts every non-quantised parameter to fp32;
        # bitsandbytes keeps one fp32 absmax per 64-weight block.
        return embed * BNB_UNQUANT_BYTES + linear * (inp.quant_bits / 8 + BNB_ABSMAX_BYTES)
    return embed * 2 + linear * (inp.quant_bits / 8) * 1.03


def act_bytes_per_token_layer(inp: PlanInput) -> float:
    a = inp.arch
    per = ACT_H * a.hidden + ACT_Q * a.q_dim + ACT_I * a.intermediate + ACT_KV * a.kv_heads * a.head_dim
    if inp.method == "lora" and inp.lora_dropout > 0:
        ins = {"q_proj": a.hidden, "k_proj": a.hidden, "v_proj": a.hidden, "o_proj": a.q_dim,
               "gate_proj": a.hidden, "up_proj": a.hidden, "down_proj": a.intermediate}
        per += 3.0 * sum(ins[m] for m in inp.lora_target if m in ins)  # dropped copy (2) + mask (1)
    if inp.attn == "eager":
        per += EAGER_SCORE_BYTES * a.heads * inp.seq_len
    return per * (2 if inp.precision == "fp32" else 1)


def estimate(inp: PlanInput) -> Breakdown:
    a = inp.arch
    n = max(1, inp.cards * inp.nodes)  # data-parallel ranks across every node
    z = inp.stage
    b = 4 if inp.precision == "fp32" else 2
    total_p = a.params()
    t_params = trainable_params(inp)
    lora = inp.method == "lora"
    # weights
    base = _weight_bytes(inp)
    deepspeed = z >= 1 and inp.precision != "fp32"
    # Bytes per trainable parameter (weight copy on top of the base, gradient, optimizer states)
    # and the foreach Adam temporary, by kind of trainable tensor.
    kinds: list[tuple[float, float, float, float, float]] = []  # (count, weight, grad, optim, temp)
    if lora:
        lora_n = float(lora_params(a, inp.lora_rank, inp.lora_target))
        copies = float(t_params) - lora_n  # modules_to_save copies of embed_tokens / lm_head
        if deepspeed:
            # DeepSpeed casts the module, adapters and copies included, to 16 bit; the fp32 copy is
            # the optimizer's (DeepSpeedEngine._configure_distributed_model).
            kinds.append((lora_n + copies, b, b, 12.0, 0.0))
        else:
            # PEFT creates the adapters in fp32 and keeps them there (LoraLayer.update_layer moves
            # them to the base layer's device only; PEFT >= 0.12 autocast_adapter_dtype upcasts
            # them), in a pure-16-bit model too: weight, gradient, two moments, foreach temporary.
            kinds.append((lora_n, 4.0, 4.0, 8.0, 4.0))
            # modules_to_save deep-copies the 16-bit module; LLaMA-Factory upcasts trainable
            # parameters to fp32 unless it trains in pure 16 bit.
            cb = float(b) if inp.pure_16bit else 4.0
            kinds.append((copies, cb, cb, 2.0 * cb, cb))
    elif inp.pure_16bit or inp.precision == "fp32":
        kinds.append((float(t_params), 0.0, b, 2.0 * b, b))  # moments in the parameters' dtype
    else:
        kinds.append((float(t_params), 0.0, b, 12.0, 0.0))  # fp32 master + m + v
    weights = base + sum(k[0] * k[1] for k in kinds)
    if z == 3:
        weights /= n
    if inp.offload == "all":
        weights = 0.0

    grad_b = sum(k[0] * k[2] for k in kinds)
    g_b = grad_b / max(1.0, float(t_params))
    grads = grad_b
    if z >= 2:
        grads /= n
    if inp.offload != "none":
        grads = 0.0  # ZeRO-Offload reduces gradients straight into host buffers (Ren et al. 2021 §4)
    optim = sum(k[0] * k[3] for k in kinds)
    if z >= 1:
        optim /= n
    if inp.offload in ("optimizer", "all"):
        optim = 0.0

    # activations and logits
    tokens = inp.micro_batch * inp.seq_len
    layer_act = tokens * act_bytes_per_token_layer(inp)
    # With bitsandbytes the fp32 embedding output makes the residual stream fp32 (bf16 + fp32 -> fp32).
    bnb = inp.quant_format == "bnb" and inp.quant_bits is not None
    resid_b = 4 if bnb else b
    stored: float
    working: float
    if inp.grad_ckpt:
        stored = a.layers * tokens * a.hidden * resid_b
        working = 2 * layer_act  # one recomputed layer and its gradients
    else:
        stored = a.layers * layer_act
        working = 2 * tokens * a.hidden * b
    if bnb:
        # bitsandbytes dequantises each layer's weights to 16 bit for its matmuls, forward and
        # backward (MatMul4Bit): one layer's worth is live while that layer runs.
        working += a.layer_params() * 2
    # Loss-phase bytes per vocab entry and token: what is allocated at the peak, and what the
    # allocator keeps reserved for the same fixed-shape step (module docstring, "logits").
    if inp.precision == "fp32":
        # fp32 logits, the contiguous copy of the shifted ones, the log-softmax (the builtin
        # trainer's `cross_entropy(logits[:, :-1].reshape(...))`); the log-softmax gradient's block.
        logit_b, cache_b = LOGIT_BYTES, 4.0
    elif not inp.loss_fp32:
        logit_b, cache_b = LOGIT_BYTES_16, LOGIT_CACHE_16
    elif inp.loss_impl == "shift_copy":
        logit_b, cache_b = LOGIT_BYTES_SHIFT_COPY, SHIFT_COPY_CACHE
    else:
        logit_b, cache_b = LOGIT_BYTES, float(b)
    logits = tokens * a.vocab * logit_b
    logit_cache = tokens * a.vocab * cache_b
    loss_phase = logits
    if bnb:
        # Autocast runs the fp32 lm_head in 16 bit: the cast copy of its weight is saved for the
        # backward, so it lives through the loss phase (torch autocast; F.linear saves its weight).
        loss_phase += a.vocab * a.hidden * 2
    # The loss phase and the backward phase do not overlap: the logits are freed before the
    # last layer's backward starts.
    if loss_phase >= working:
        act_term, logit_term = stored, loss_phase
    else:
        act_term, logit_term = stored + working - loss_phase, loss_phase

    # buffers
    layer_w = a.layer_params() * b
    if z == 3:
        lm_head = a.vocab * a.hidden * b
        buffers: float = max(2 * layer_w, lm_head + layer_w) + 2 * a.hidden**2 * 4
    elif z in (1, 2):
        # The gradient bucket DeepSpeed allocates at each backward (twice with overlap_comm).
        bucket = inp.reduce_bucket if inp.reduce_bucket is not None else min(BUCKET_ELEMS, t_params)
        buffers = (2 if inp.overlap_comm else 1) * bucket * b
    else:
        buffers = t_params * g_b if n > 1 else 0.0  # DDP's bucket copy of the gradients

    # The optimizer step runs after the backward pass has freed activations and logits, so its
    # temporaries (torch's foreach Adam: one copy of the trainable parameters) only compete with
    # the static terms.
    step_temp = 0.0
    if z == 0 and (lora or inp.pure_16bit or inp.precision == "fp32"):
        # torch's foreach Adam copies the trainable parameters once, in their own dtype (fp32
        # adapters, or the 16-bit copies LoRA trains with modules_to_save in a pure-16-bit model).
        step_temp = sum(k[0] * k[4] for k in kinds)
    elif z >= 1 and inp.offload == "none":
        # DeepSpeed's mixed-precision step upcasts the gradient partition to fp32: the whole
        # partition at ZeRO-1/2 (stage_1_and_2.py), one sub-group (sub_group_size 1e9) at ZeRO-3.
        part = t_params / n
        step_temp = 4 * (min(part, SUB_GROUP_ELEMS) if z == 3 else part)
    runtime = 0.0 if inp.reserved_only else RUNTIME_GIB.get(inp.device, 0.0) * GIB
    static = weights + grads + optim + buffers
    transient = act_term + logit_term
    # torch's reserved figure holds the states in blocks of their own size; the margin is for what a
    # card monitor also sees outside the caching allocator (module docstring, "headroom").
    margin = 0.0 if inp.reserved_only else STATIC_HEADROOM
    hard = static * (1 + margin) + max(transient, step_temp) + runtime
    # Variable-length batches leave loss-phase blocks of many sizes in the allocator's cache. States
    # made lazily settle into them, but only the moments: torch's Adam makes them at the first
    # step(), when every block of the first batch is free; the gradients appear during that
    # batch's backward, beside its blocks. DeepSpeed makes its partitions before any batch.
    lazy = optim if z == 0 else 0.0
    frag = logit_cache
    if not inp.fixed_length:
        # Blocks cached from batches of other lengths: about DYNAMIC_FRAG more loss-phase sets
        # (allocated + cached bytes) of a typical batch, not of the longest one.
        typical = min(inp.seq_len, inp.typical_len or inp.seq_len)
        sets = inp.micro_batch * typical * a.vocab * (logit_b + cache_b)
        frag = max(logit_cache, logit_cache + DYNAMIC_FRAG * sets - lazy)
    if inp.device == "cpu":
        # CPU ranks have no caching allocator: glibc hands blocks above its mmap threshold back to the
        # system when freed, so a rank's resident memory holds what is allocated, not a cache of it.
        frag = 0.0
    total = hard + frag
    cap = inp.card_gb * GIB
    if hard <= cap:
        total = min(total, cap)  # the allocator gives its cache back before it fails
    headroom = total - (static + transient + runtime)

    host = _host_bytes(inp, t_params, total_p)
    return Breakdown(
        weights=weights / GIB, gradients=grads / GIB, optimizer=optim / GIB,
        activations=act_term / GIB, logits=logit_term / GIB, buffers=buffers / GIB,
        runtime=runtime / GIB, headroom=headroom / GIB, total=total / GIB, hard=hard / GIB,
        host_gib=host / GIB, trainable_params=t_params, total_params=total_p,
    )


def _host_bytes(inp: PlanInput, t_params: int, total_p: int) -> float:
    """Host RAM per node: the loading copy, each rank's process, offloaded states (8 ranks a node)."""
    ranks = min(inp.cards, 8)
    host = total_p * 2.0 + ranks * 2.0 * GIB  # one 16-bit copy while loading; python+torch+runtime per rank
    if inp.offload in ("optimizer", "all"):
        host += t_params * (12 + 4) * ranks / max(1, inp.cards * inp.nodes)
    if inp.offload == "all":
        host += total_p * 2.0 * ranks / max(1, inp.cards * inp.nodes)
    return host
