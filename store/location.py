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
