#!/usr/bin/env bash
# Build (once) the LLaMA-Factory environment the real LLaMA-Factory tests and CI run in, and print
# its path. It lives outside the repository, in ${ZERODECK_LF_VENV:-~/.cache/zerodeck/lf-venv}, and
# is reused while its stamp file matches the pins below; a half-built one is finished on the next
# call. zerodeck itself is not installed there: zerodeck only renders a YAML and starts the
# `llamafactory-cli` of this environment.
#
# Why it is built the way it is:
# - torch goes in first with an exact spec (`torch==2.13.0`): a local CPU wheel satisfies it, where a
#   bare `torch` could pull a multi-GB CUDA build. Every later install is constrained to it.
# - DeepSpeed is built against that torch without build isolation, for the same reason.
# - llamafactory 0.9.5 is installed without its dependency list, then the dependencies its `train`
#   command imports are installed with the versions known to train on CPU. Its full list asks for
#   torchaudio and torchvision (and gradio, for the web UI), and no torchaudio wheel exists for
#   torch 2.13: resolving it would replace torch.
# - LLaMA-Factory imports `torchaudio` at module level (data/mm_plugin.py) even for text-only
#   training, so an empty `torchaudio` package stands in for it. It has no dist-info, so
#   transformers' availability checks still report torchaudio as absent.
# - transformers 5.5.4, not 4.57.x: 4.57.1 + LoRA + DeepSpeed crashes at the first scheduler step
#   under torch >= 2.10 (`ValueError: zip() argument 2 is longer than argument 1`).
# - DeepSpeed 0.19.8, not 0.18.x: on gloo, 0.18's coalesced ZeRO-3 all-gather waited for its last
#   handle only, so a weight gathered while loading the model could be read before it arrived. Here it
#   left one k_proj/v_proj of the tiny Qwen2 uninitialized in 6 of 12 two-rank loads (NaN losses,
#   gradient norms of 1e28); 0.19.8 waits for every handle (DeepSpeed PR #8539), 0 of 12.
set -euo pipefail
LF_VENV=${ZERODECK_LF_VENV:-$HOME/.cache/zerodeck/lf-venv}
PY=${PYTHON:-python3}
TORCH=${ZERODECK_TORCH:-torch==2.13.0}
PINS=(
  "llamafactory==0.9.5"
  "transformers==5.5.4"
  "accelerate==1.11.0"
  "peft==0.18.1"
  "trl==0.24.0"
  "datasets>=2.16.0,<=4.0.0"
  "deepspeed==0.19.8"
)
# What llamafactory's `train` path imports beyond the pinned packages above.
DEPS=(omegaconf pyyaml numpy scipy pandas matplotlib sentencepiece tiktoken protobuf einops safetensors
  packaging pydantic psutil)

stamp="$LF_VENV/.zerodeck-lf-$(printf '%s\n' "$TORCH" "${PINS[@]}" "${DEPS[@]}" stub-torchaudio-1 | cksum | cut -d' ' -f1)"
if [ -f "$stamp" ]; then
  echo "$LF_VENV"
  exit 0
fi

mkdir -p "$(dirname "$LF_VENV")"
exec 9>"$LF_VENV.lock"
flock 9  # two test runs at once build it once
if [ -f "$stamp" ]; then
  echo "$LF_VENV"
  exit 0
fi

log="$LF_VENV.build.log"
echo "zerodeck: building the LLaMA-Factory environment in $LF_VENV (once; log: $log)" >&2
: >"$log"
# pip's chatter (and its expected complaint that llamafactory's web-UI dependencies are missing)
# goes to the log; a failure shows the log's tail.
trap 'rc=$?; [ $rc -eq 0 ] || { tail -n 25 "$log" >&4; echo "zerodeck: LLaMA-Factory environment build failed (exit $rc)" >&4; }' EXIT
exec 3>&1 4>&2 1>>"$log" 2>&1
[ -x "$LF_VENV/bin/python" ] || "$PY" -m venv "$LF_VENV"
PIP=("$LF_VENV/bin/python" -m pip --disable-pip-version-check -q)
constraints="$LF_VENV/constraints.txt"
printf '%s\n' "$TORCH" "${PINS[@]}" >"$constraints"

"${PIP[@]}" install -U pip setuptools wheel >/dev/null
"${PIP[@]}" install "$TORCH"
"${PIP[@]}" install -c "$constraints" numpy ninja
"${PIP[@]}" install --no-build-isolation -c "$constraints" "deepspeed==0.19.8"
"${PIP[@]}" install --no-deps "llamafactory==0.9.5"
"${PIP[@]}" install -c "$constraints" "${PINS[@]:1}" "${DEPS[@]}"

site=$("$LF_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
mkdir -p "$site/torchaudio"
cat >"$site/torchaudio/__init__.py" <<'EOF'
"""Empty stand-in for torchaudio, written by zerodeck's scripts/lf-venv.sh.

LLaMA-Factory imports torchaudio at module level even for text-only training, and no torchaudio
wheel exists for this CPU torch. Audio datasets fail here; text SFT never touches it.
"""
EOF

# Prove the environment can do what the tests ask of it before stamping it complete.
"$LF_VENV/bin/python" - <<'EOF'
import deepspeed, llamafactory, peft, transformers, trl, torch  # noqa: F401
from llamafactory.train.tuner import run_exp  # noqa: F401  (pulls mm_plugin -> torchaudio)
EOF
[ -x "$LF_VENV/bin/llamafactory-cli" ] && [ -x "$LF_VENV/bin/torchrun" ]
rm -f "$LF_VENV"/.zerodeck-lf-*
touch "$stamp"
echo "$LF_VENV" >&3
