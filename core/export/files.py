"""Writing an export to a file: the one place that knows each format's encoding."""

from __future__ import annotations

from pathlib import Path

from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import _


def write_export(path: Path, text: str, fmt: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Excel reads a CSV as UTF-8 only with the byte-order mark; Chinese model names need it.
        path.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="")
    except OSError as exc:
        raise BadInput(_("{path}: cannot write: {reason}").format(path=path, reason=exc.strerror or exc)) from None
