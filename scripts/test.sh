#!/usr/bin/env bash
# Install zerodeck with its test tools into ./.venv and run the whole suite (the real DeepSpeed and
# LLaMA-Factory runs included). Extra arguments go to pytest, e.g. `-m "not slow"` while working.
source "$(dirname "$0")/venv.sh" train,test,nvidia
cd "$ROOT"
# The environment the real LLaMA-Factory tests train in: built once (about a minute), then reused
# from its cache. If it cannot be built, those tests skip and say why; the rest still run.
export ZERODECK_LF_VENV=${ZERODECK_LF_VENV:-$HOME/.cache/zerodeck/lf-venv}
bash scripts/lf-venv.sh >/dev/null || echo "zerodeck: no LLaMA-Factory environment; its tests will skip" >&2
# The same for the real ms-swift test (ms-swift 4.6 over that environment; a few minutes once).
export ZERODECK_SWIFT_VENV=${ZERODECK_SWIFT_VENV:-$HOME/.cache/zerodeck/swift-venv}
bash scripts/swift-venv.sh >/dev/null || echo "zerodeck: no ms-swift environment; its test will skip" >&2
# PostgreSQL for the tests that run the store on both backends (tests/pg_server.py starts its own
# server in a temporary directory and removes it). Debian's package is installed when initdb is
# missing, without the cluster its install would create and start: nothing is left running.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "zerodeck: installing Debian's postgresql for the PostgreSQL tests" >&2
        mkdir -p /etc/postgresql-common
        grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
            || echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql \
            || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                 --no-install-recommends postgresql; }; } >/dev/null \
            || echo "zerodeck: could not install postgresql; the PostgreSQL tests will skip" >&2
    else
        echo "zerodeck: no PostgreSQL (initdb) here and not root to install it; the PostgreSQL tests will skip" >&2
    fi
fi
"$VENV/bin/ruff" check core store tui tests bench
MYPY="$VENV/bin/mypy" bash scripts/mypy.sh core store tui
# The layering contracts in pyproject.toml [tool.importlinter] (ARCHITECTURE.md, "Layers").
"$VENV/bin/lint-imports" --no-cache --no-logo
exec "$VENV/bin/python" -m pytest "$@"
