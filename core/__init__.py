"""zerodeck's headless core: recipes, planning, launching, telemetry, outcomes and exports.

Nothing here imports textual, torch or deepspeed at module level, so the CLI starts fast and the
TUI can be swapped for any other front end.
"""

__version__ = "0.1.0"
