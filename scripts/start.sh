#!/usr/bin/env bash
# Install zerodeck (with the trainer for the CPU demo) into ./.venv and open the TUI.
source "$(dirname "$0")/venv.sh" train
exec "$VENV/bin/zerodeck" "$@"
