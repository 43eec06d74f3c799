"""Where zerodeck keeps its data: one place, so the CLI, the supervisor and the TUI agree.

`ZERODECK_HOME` wins; otherwise the XDG data directory (`$XDG_DATA_HOME/zerodeck`, by default
`~/.local/share/zerodeck`). User recipes live in `$ZERODECK_HOME/recipes` beside the shipped catalog.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from zerodeck.core.errors import BadInput
from zerodeck.store.location import data_home, data_home_label


def home() -> Path:
    return data_home()


def home_problem() -> str | None:
    """Why the data directory cannot be used, checked once at the entry, before anything creates
    in it: a file there (or in place of a parent) makes every mkdir fail with a bare `File exists`."""
    path = home()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir():
        return None
    if probe == path:
        return f"{data_home_label()} is not a directory"
    return f"{data_home_label()}: {probe} is not a directory"


def check_home() -> Path:
    """The data directory, or BadInput (exit 2) saying why it is unusable."""
    problem = home_problem()
    if problem:
        raise BadInput(problem)
    return home()


def ensure_home() -> Path:
    path = home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return home() / "runs"


def config_file() -> Path:
    """`$ZERODECK_HOME/config.toml`: settings that are the user's, not a recipe's (alert targets)."""
    return home() / "config.toml"


def user_recipes_dir() -> Path:
    return home() / "recipes"


def shipped_recipes_dir() -> Path:
    """The catalog that ships inside the package (recipes/ in the source tree)."""

    return Path(str(files("zerodeck.recipes")))
