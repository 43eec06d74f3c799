"""One probe for the rule that the CLI, the planner, the supervisor and the renderers never load
the training stack or the UI: run code in a fresh interpreter and list what it left imported."""

from __future__ import annotations

import ast
import subprocess
import sys

HEAVY = ("textual", "torch", "deepspeed", "transformers")
# The store's ORM: commands that read or write runs load it, but `zerodeck --help` (and planning
# without a database) must not: importing SQLAlchemy alone takes many times as long as all of `--help`.
STORE = ("sqlalchemy", "sqlmodel")


def heavy_modules_loaded(code: str, also: tuple[str, ...] = ()) -> list[str]:
    probe = code + f"\nimport sys\nprint(repr([m for m in {HEAVY + also!r} if m in sys.modules]))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])
