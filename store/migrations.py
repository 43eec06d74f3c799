"""Schema migrations: `MIGRATIONS[n]` upgrades a database from version n-1 to n.

Each step is plain SQL on a connection inside a transaction, written so it never drops a row;
a release that changes models.py adds a step here and bumps SCHEMA_VERSION.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MIGRATIONS: dict[int, Callable[[Any], None]] = {
    # 1: the first schema; created by create_all, nothing to move.
}
