#!/usr/bin/env bash
# Install zerodeck with its test tools into ./.venv and run the whole suite (the real DeepSpeed and
# LLaMA-Factory runs included). Extra arguments go to pytest, e.g. `-m "not slow"` while working.
source "$(dirname "$0")/venv.sh" train,test,nvidia
cd "$ROOT"
"$VENV/bin/ruff" check core store tui tests bench
"$VENV/bin/mypy" core store
exec "$VENV/bin/python" -m pytest "$@"
