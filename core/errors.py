"""The error types every command maps to an exit code, so no handler ever prints a traceback.

Exit codes are a contract (ARCHITECTURE.md, "Contracts"): 0 success, 1 the operation failed, 2 bad input or usage.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class ZerodeckError(Exception):
    """A failure to report as one line; `exit_code` says whose fault it was."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.lines = lines or [message]


class BadInput(ZerodeckError):
    """The user's input (a file, a field, a flag) is wrong: exit 2."""

    exit_code = EXIT_USAGE


class OperationFailed(ZerodeckError):
    """The input was fine but the work did not succeed: exit 1."""

    exit_code = EXIT_FAILED
