# Sourced by start.sh and test.sh: make ./.venv with zerodeck and the given extras.
# torch goes in first and DeepSpeed is built against it without build isolation; otherwise pip
# would fetch a second, multi-GB torch just to build DeepSpeed. Set ZERODECK_TORCH to choose the
# torch build (for example "torch==2.5.1" to match an installed torch-npu).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ZERODECK_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
EXTRAS=${1:-train}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp="$VENV/.zerodeck-$(echo "$EXTRAS" | tr ',' '-')-$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  "${PIP[@]}" install -U pip setuptools wheel >/dev/null
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "zerodeck: installing ${ZERODECK_TORCH:-torch==2.13.0} (once)" >&2
    "${PIP[@]}" install "${ZERODECK_TORCH:-torch==2.13.0}"
  fi
  if ! "$VENV/bin/python" -c "import deepspeed" 2>/dev/null; then
    "${PIP[@]}" install --no-build-isolation "deepspeed>=0.14" numpy
  fi
  "${PIP[@]}" install -e "$ROOT[$EXTRAS]"
  touch "$stamp"
fi
