"""This server's name in the card ledger and the `host` table, and how long a host may stay silent.

Several servers share one store (issue 14), so every process must call its host by the same name:
the runner that claims, the supervisors it starts, and every command that reconciles (a command
judges only its own host's processes; other hosts' runs are judged by their heartbeat). The name and
the grace are read once at the process's entry (`configure`, from `ZERODECK_HOST` and
`ZERODECK_HOST_GRACE`) and asked for below it (`this_host`, `host_grace`); `ZERODECK_HOST` stands in
for the machine's name where that is not unique (containers) and lets tests run two hosts on one machine.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from zerodeck.core.errors import BadInput

HOST_VAR = "ZERODECK_HOST"
GRACE_VAR = "ZERODECK_HOST_GRACE"
DEFAULT_GRACE_S = 60.0  # store.api.DEFAULT_LEASE_S: not imported, so the CLI entry loads no ORM

_name: str | None = None
_grace: float = DEFAULT_GRACE_S


def name_from_env(env: Mapping[str, str]) -> str:
    return env.get(HOST_VAR, "").strip() or socket.gethostname()


def grace_from_env(env: Mapping[str, str]) -> float:
    raw = env.get(GRACE_VAR, "").strip()
    if not raw:
        return DEFAULT_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 86400.0:
        raise BadInput(f"{GRACE_VAR}={raw!r}: expected seconds from 1 to 86400")
    return value


def configure(env: Mapping[str, str]) -> None:
    """At a process's entry: this host's name and grace (a bad grace is BadInput naming the variable)."""
    global _name, _grace
    _name, _grace = name_from_env(env), grace_from_env(env)


def this_host() -> str:
    return _name or socket.gethostname()


def host_grace() -> float:
    return _grace
