"""Charts drawn by a second process that imports matplotlib while the command reads the store.

A chart command spends about half its time importing the store's libraries and reading the runs, and
the other half importing matplotlib and drawing; neither needs the other until the drawing starts.
A `Painter` made as the command starts imports matplotlib on another core meanwhile, so on a server
a chart costs the larger of the two, not their sum. The command then hands it the chart to draw and
gets back the file's bytes and the warnings to print: the command still writes the file, says what
it wrote and turns a write error into its one-line message.

Job and answer travel pickled over the child's stdin and stdout: objects of this package between a
process and the child it started, never anything read from a file or a peer. Where no process can be
started the chart is drawn here, the same function, only slower.
"""

from __future__ import annotations

import io
import pickle
import select
import subprocess
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from zerodeck.core.i18n import language, set_language

CHARTS = ("curves_chart", "memory_chart", "peaks_chart")

# `python -c` puts the working directory first on sys.path: a `zerodeck/` or `matplotlib.py` there
# must not stand in for the installed ones (Python 3.11's safe_path flag leaves it out already).
# Once the answer is written the child leaves at once: tearing down an interpreter that holds
# matplotlib takes a tenth of a second, which the command would wait for.
_CHILD = ("import os, sys\n"
          "if not getattr(sys.flags, 'safe_path', False): del sys.path[0]\n"
          "from zerodeck.core.export.painter import main\n"
          "os._exit(main(sys.argv[1]))\n")

Warn = Callable[[str], None]


class ChartFailed(RuntimeError):
    """The painter died or drew nothing: a bug, said in one line by the CLI (its traceback, if any,
    is already on stderr)."""


class Painter:
    """One chart, drawn in a child process started now. Use as a context manager: leaving it without
    drawing (bad input found while reading the store, Ctrl-C) stops the child."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._proc: subprocess.Popen[bytes] | None
        try:
            # Its own session: a Ctrl-C at the terminal goes to the command, which stops the child.
            self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, fmt], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, start_new_session=True)
        except OSError:
            self._proc = None

    def __enter__(self) -> Painter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def draw(self, chart: str, data: Any, *, warn: Warn | None = None, **options: Any) -> bytes:
        """The chart file's bytes, in the painter's format: `charts.<chart>(data, target, fmt, warn=...,
        **options)`; the warnings it gave go to `warn`."""
        if chart not in CHARTS:
            raise ValueError(f"no chart named {chart!r}")
        if self._proc is None:
            image, said = _draw(chart, data, self.fmt, options)
        else:
            out, _ = self._proc.communicate(pickle.dumps((chart, data, options, language())))
            if self._proc.returncode != 0 or not out:
                raise ChartFailed(f"the chart process ended with status {self._proc.returncode} and drew nothing")
            image, said = pickle.loads(out)
        if warn is not None:
            for line in said:
                warn(line)
        return bytes(image)


def _draw(chart: str, data: Any, fmt: str, options: dict[str, Any]) -> tuple[bytes, list[str]]:
    from zerodeck.core.export import charts

    said: list[str] = []
    buf = io.BytesIO()
    getattr(charts, chart)(data, buf, fmt, warn=said.append, **options)
    return buf.getvalue(), said


def _ready(stream: BinaryIO) -> bool:
    """Whether reading `stream` would not wait: a job written, or the command gone."""
    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):  # not a pipe select can watch: warm up as before
        return False


def main(fmt: str) -> int:
    """The child: import matplotlib (the point of the child) and, while the command is still reading,
    draw a throwaway chart in `fmt`, which loads the fonts and that format's backend (a PDF's font
    machinery: a quarter of a second); then draw the one job on stdin in the same format. A job
    already waiting once matplotlib is imported is drawn at once: the throwaway chart would only
    delay it (a peaks chart's command reads little and is often done first)."""
    from zerodeck.core.export import charts
    from zerodeck.core.export.chart_data import Curve

    if not _ready(sys.stdin.buffer):
        charts.curves_chart([Curve("1", [(1.0, 1.0), (2.0, 0.5)])], io.BytesIO(), fmt, title="loss", ylabel="loss")
    job = sys.stdin.buffer.read()
    if not job:  # the command ended without a chart to draw
        return 0
    chart, data, options, lang = pickle.loads(job)
    set_language(lang)
    sys.stdout.buffer.write(pickle.dumps(_draw(chart, data, fmt, options)))
    sys.stdout.buffer.flush()
    return 0
