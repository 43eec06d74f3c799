#!/usr/bin/env bash
# mypy over the installed package names (zerodeck.core, zerodeck.store, zerodeck.tui).
# The editable install maps core/ to zerodeck.core through an import hook that mypy cannot follow, so
# `mypy core store` typed every `zerodeck.*` import as Any and checked no call across modules. A tree of
# symlinks (.mypy-src/zerodeck/core -> core, ...) lets mypy resolve the real modules and their types.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MYPY=${MYPY:-$ROOT/.venv/bin/mypy}
mkdir -p "$ROOT/.mypy-src/zerodeck"
for pkg in core store tui recipes; do ln -sfn "../../$pkg" "$ROOT/.mypy-src/zerodeck/$pkg"; done
cd "$ROOT"
args=()
for pkg in "${@:-core store tui}"; do for p in $pkg; do args+=(-p "zerodeck.$p"); done; done
MYPYPATH="$ROOT/.mypy-src" exec "$MYPY" --explicit-package-bases "${args[@]}"
