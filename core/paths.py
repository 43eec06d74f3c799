"""Where zerodeck keeps its data: one place, so the CLI, the supervisor and the TUI agree.

`ZERODECK_HOME` wins; otherwise the XDG data directory (`$XDG_DATA_HOME/zerodeck`, by default
`~/.local/share/zerodeck`). User recipes live in `$ZERODECK_HOME/recipes` beside the shipped catalog.
"""

from __future__ import annotations

from pathlib import Path

from zerodeck.store.location import data_home


def home() -> Path:
    return data_home()


def ensure_home() -> Path:
    path = home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return home() / "runs"


def user_recipes_dir() -> Path:
    return home() / "recipes"


def shipped_recipes_dir() -> Path:
    """The catalog that ships inside the package (recipes/ in the source tree)."""
    from importlib.resources import files

    return Path(str(files("zerodeck.recipes")))
