"""A free MASTER_PORT per run, so two runs on one machine never collide on 29500.

A port is free when it can be bound now and no active run in the store holds it (a run's ranks
bind their port only seconds after start, so the store is the only witness in that window).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable

PORT_RANGE = (29500, 29999)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(taken: Iterable[int] = (), rng: random.Random | None = None) -> int:
    """A port in PORT_RANGE that binds now and is not in `taken`."""
    busy = set(taken)
    rng = rng or random.Random()
    candidates = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
    rng.shuffle(candidates)
    for port in candidates:
        if port not in busy and port_is_free(port):
            return port
    raise OSError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")
