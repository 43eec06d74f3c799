#!/usr/bin/env bash
# Build (once) the ms-swift environment the real ms-swift test runs in, and print its path. It lives
# outside the repository, in ${ZERODECK_SWIFT_VENV:-~/.cache/zerodeck/swift-venv}, and is reused
# while its stamp file matches the pins below.
#
# Why it is built the way it is:
# - It stands on the LLaMA-Factory environment (scripts/lf-venv.sh): torch 2.13 CPU, DeepSpeed,
#   transformers, peft and trl are the ones that environment proved to train on CPU, and are seen
#   here through a .pth file instead of a second multi-GB copy. Every install is constrained to them.
# - datasets is the exception: ms-swift 4.6 imports `datasets.features.Json`, which the 4.0.0 that
#   LLaMA-Factory pins lacks, so a newer one is installed here, shadowing that one for swift alone.
# - ms-swift is pinned: its argument names and its log lines are what zerodeck renders and parses.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SWIFT_VENV=${ZERODECK_SWIFT_VENV:-$HOME/.cache/zerodeck/swift-venv}
PY=${PYTHON:-python3}
PIN="ms-swift==4.6.0"
DATASETS="datasets==4.8.4"

LF_VENV=$(bash "$ROOT/scripts/lf-venv.sh")
stamp="$SWIFT_VENV/.zerodeck-swift-$(printf '%s\n' "$PIN" "$DATASETS" "$LF_VENV" pth-1 | cksum | cut -d' ' -f1)"
if [ -f "$stamp" ]; then
  echo "$SWIFT_VENV"
  exit 0
fi

mkdir -p "$(dirname "$SWIFT_VENV")"
exec 9>"$SWIFT_VENV.lock"
flock 9
if [ -f "$stamp" ]; then
  echo "$SWIFT_VENV"
  exit 0
fi

log="$SWIFT_VENV.build.log"
echo "zerodeck: building the ms-swift environment in $SWIFT_VENV (once; log: $log)" >&2
: >"$log"
trap 'rc=$?; [ $rc -eq 0 ] || { tail -n 25 "$log" >&4; echo "zerodeck: ms-swift environment build failed (exit $rc)" >&4; }' EXIT
exec 3>&1 4>&2 1>>"$log" 2>&1
[ -x "$SWIFT_VENV/bin/python" ] || "$PY" -m venv "$SWIFT_VENV"
site=$("$SWIFT_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
lf_site=$("$LF_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$lf_site" >"$site/zerodeck-lf-venv.pth"
# The LLaMA-Factory environment's versions, as constraints: nothing it has is replaced here.
"$LF_VENV/bin/python" -m pip --disable-pip-version-check list --format=freeze \
  | grep -Ei '^(torch|transformers|peft|trl|accelerate|deepspeed|numpy|tokenizers|safetensors|huggingface-hub)==' \
  >"$SWIFT_VENV/constraints.txt"
PIP=("$SWIFT_VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -c "$SWIFT_VENV/constraints.txt" "$PIN" "$DATASETS"

"$SWIFT_VENV/bin/python" - <<'PYEOF'
import swift, torch, transformers, peft  # noqa: F401
from swift.pipelines import sft_main  # noqa: F401
from datasets.features import Json  # noqa: F401
PYEOF
[ -x "$SWIFT_VENV/bin/swift" ]
rm -f "$SWIFT_VENV"/.zerodeck-swift-*
touch "$stamp"
echo "$SWIFT_VENV" >&3
