#!/usr/bin/env bash
# Real-hardware check of the planner and the probes (issue 16), in minutes, on a machine with a CUDA GPU:
#   1. a real DeepSpeed run of a tiny Qwen2-architecture model through `zerodeck run` (the builtin
#      trainer with a local config.json: transformers' own Qwen2, random weights, no download),
#      recorded with NVML telemetry;
#   2. a forced CUDA OOM (a micro-batch no card holds), which must be recorded as oom / cuda;
#   3. `zerodeck probe` on two recipes (ZeRO-2 without checkpointing, ZeRO-3 with it);
#   4. the planner against every measured peak, printed as one table.
# Without a CUDA GPU (or without torch with CUDA, DeepSpeed and transformers in $PYTHON) it says so
# and exits 0: CI never depends on it. Exit 1 when a check fails.
#
#   PYTHON=/path/to/cuda-env/bin/python bench/gpu_check.sh      # zerodeck installed in that env
#   CARDS=2 bench/gpu_check.sh                                   # more ranks (default 1)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=$(command -v python3 || true); fi
fi
CARDS=${CARDS:-1}

skip() { echo "gpu_check: $*: nothing to check on this machine (skipped)"; exit 0; }

command -v nvidia-smi >/dev/null 2>&1 || skip "no nvidia-smi"
nvidia-smi -L 2>/dev/null | grep -q '^GPU ' || skip "nvidia-smi lists no GPU"
[[ -n "$PY" && -x "$PY" ]] || skip "no Python found (set PYTHON)"
if ! "$PY" - <<'PYEOF'
import sys
try:
    import torch, deepspeed, transformers  # noqa: F401
    import zerodeck.core  # noqa: F401
except Exception as exc:  # any missing piece means this environment cannot run the check
    sys.stderr.write(f"gpu_check: {exc}\n")
    sys.exit(1)
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
then
  skip "$PY has no CUDA torch, DeepSpeed, transformers or zerodeck"
fi
ZD=("$PY" -c "import sys; from zerodeck.core.cli import entry; sys.argv[0] = 'zerodeck'; sys.exit(entry())")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zerodeck-gpu-check.XXXXXX")
export ZERODECK_HOME="$WORK/home"
mkdir -p "$ZERODECK_HOME"
echo "gpu_check: work directory $WORK (ZERODECK_HOME inside)"

# The card's memory as the recipe's card_gb: what the planner's verdict is made against.
CARD_GB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 | awk '{printf "%.1f", $1 / 1024}')

# A tiny Qwen2: Qwen2.5's real 151936-entry vocabulary (the logits dominate, as they do for 0.5B-3B),
# four layers of hidden size 512 with grouped-query attention.
mkdir -p "$WORK/tiny-qwen2"
cat > "$WORK/tiny-qwen2/config.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 512,
 "intermediate_size": 1536, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
 "vocab_size": 151936, "max_position_embeddings": 32768, "tie_word_embeddings": false,
 "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "attention_bias": true, "torch_dtype": "bfloat16"}
JSON

recipe() {  # name stage grad_ckpt micro_batch seq_len max_steps
  cat > "$WORK/$1.toml" <<TOML
name = "$1"
tags = ["gpu-check"]
[model]
path = "$WORK/tiny-qwen2"
[method]
kind = "full"
[zero]
stage = $2
offload = "none"
[data]
path = "$ROOT/recipes/data/demo-alpaca.jsonl"
format = "alpaca"
[train]
micro_batch = $4
seq_len = $5
max_steps = $6
grad_ckpt = $3
precision = "bf16"
attn = "sdpa"
[hardware]
device = "cuda"
cards = $CARDS
card_gb = $CARD_GB
[launch]
backend = "builtin"
TOML
}
recipe gpu-z2 2 false 4 1024 20
recipe gpu-z3-ckpt 3 true 4 2048 20
recipe gpu-oom 2 false 256 8192 3

fail=0

echo "== 1. a real DeepSpeed run through zerodeck run"
"${ZD[@]}" run "$WORK/gpu-z2.toml" --json > "$WORK/run.json" || { echo "FAIL: the run failed"; fail=1; }
cat "$WORK/run.json"

echo "== 2. a forced CUDA OOM"
"${ZD[@]}" run "$WORK/gpu-oom.toml" --json > "$WORK/oom.json" || true
OOM_ID=$("${ZD[@]}" runs --json | "$PY" -c 'import json,sys; print(max(r["id"] for r in json.load(sys.stdin) if r["name"] == "gpu-oom"))')
"${ZD[@]}" show "$OOM_ID" --json > "$WORK/oom-show.json"
"$PY" - "$WORK/oom-show.json" <<'PYEOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
ok = d.get("outcome") == "oom" and d.get("outcome_device") == "cuda"
verdict = "OK" if ok else "FAIL (want oom / cuda)"
print(f"run {d.get('id')}: outcome {d.get('outcome')} / {d.get('outcome_device')}: {verdict}")
sys.exit(0 if ok else 1)
PYEOF

echo "== 3. probes"
for r in gpu-z2 gpu-z3-ckpt; do
  "${ZD[@]}" probe "$WORK/$r.toml" --steps 5 --json | tee "$WORK/probe-$r.json" || { echo "FAIL: probe $r"; fail=1; }
done

echo "== 4. planner against measured peaks (GiB per card; the planner's figure is what a card monitor shows)"
"$PY" - "$WORK" <<'PYEOF'
import json, subprocess, sys
from pathlib import Path
work = Path(sys.argv[1])
zd = [sys.executable, "-c", "import sys; from zerodeck.core.cli import entry; sys.argv[0] = 'zerodeck'; sys.exit(entry())"]
runs = json.loads(subprocess.run([*zd, "runs", "--json"], capture_output=True, text=True, check=True).stdout)
plans = {}
for name in ("gpu-z2", "gpu-z3-ckpt", "gpu-oom"):
    out = subprocess.run([*zd, "plan", str(work / f"{name}.toml"), "--json"], capture_output=True, text=True)
    plans[name] = json.loads(out.stdout) if out.returncode == 0 else {}
print(f"{'run':>4}  {'recipe':<12} {'kind':<6} {'outcome':<10} {'predicted':>9} {'range':>15} {'must fit':>8}"
      f" {'measured':>8} {'error':>7}")
for r in sorted(runs, key=lambda r: r["id"]):
    show = json.loads(subprocess.run([*zd, "show", str(r["id"]), "--json"], capture_output=True, text=True).stdout)
    p = plans.get(r["name"], {})
    pred, meas = show.get("predicted_peak_gib"), show.get("measured_peak_gib")
    kind = "probe" if "probe" in (show.get("tags") or []) else "run"
    rng = p.get("range_gib") or [None, None]
    err = f"{(pred - meas) / meas * 100:+.1f}%" if pred and meas and show.get("outcome") == "succeeded" else "-"
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"{r['id']:>4}  {r['name']:<12} {kind:<6} {str(show.get('outcome')):<10} {fmt(pred):>9}"
          f" {fmt(rng[0]) + '..' + fmt(rng[1]):>15} {fmt(p.get('must_fit_gib')):>8} {fmt(meas):>8} {err:>7}")
PYEOF

if [[ $fail -ne 0 ]]; then echo "gpu_check: FAILED (work directory kept: $WORK)"; exit 1; fi
echo "gpu_check: all checks passed (work directory: $WORK)"
