"""Where the data directory is: `ZERODECK_HOME`, else `$XDG_DATA_HOME/zerodeck` (~/.local/share)."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    env = os.environ.get("ZERODECK_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "zerodeck"


def data_home_label() -> str:
    """How the user named the data directory, for messages: `ZERODECK_HOME=/x` or just the path."""
    env = os.environ.get("ZERODECK_HOME")
    return f"ZERODECK_HOME={env}" if env else str(data_home())
