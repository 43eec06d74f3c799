"""Deliver alerts through Apprise with a deadline, in a process of its own.

`spawn(run_id, kind, run_dir)` starts `python -m zerodeck.core.alerts.send RUN KIND --run-dir DIR`
detached and returns at once: the supervisor (or the reconciler, for a run whose supervisor died)
records the outcome first and never waits on a target. The sender reads the targets from the run's
launch spec (0600, written at launch from config.toml and the recipe), sends to every target at once,
waits at most DEADLINE_S, records `alert_sent` / `alert_failed` per target (masked) and exits, leaving
behind any thread still stuck on a hanging target. Apprise is imported only here, when sending.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodeck.core.alerts.config import mask_url

DEADLINE_S = 15.0  # the most one alert waits on all its targets together
MODULE = "zerodeck.core.alerts.send"


@dataclass(frozen=True)
class Delivery:
    target: str  # masked
    ok: bool
    error: str | None = None


def scrub(text: str, url: str) -> str:
    """An error line without any piece of the target's URL that could be a secret."""
    _, _, rest = url.partition("://")
    pieces = {url, rest} | {p for p in rest.replace("@", "/").replace("?", "/").replace("&", "/").split("/") if p}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 4 and piece not in mask_url(url):
            text = text.replace(piece, "***")
    return text


def deliver(urls: list[str] | tuple[str, ...], title: str, body: str, deadline: float = DEADLINE_S
            ) -> list[Delivery]:
    """Send to every target in parallel; a target that has not answered by the deadline has failed."""
    import apprise  # a few hundred ms of imports: only in the process that sends

    results: dict[int, Delivery] = {}

    def one(i: int, url: str) -> None:
        masked = mask_url(url)
        lines: list[str] = []

        def keep(entry: Any, _service: Any = None) -> None:
            if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL"):
                lines.append(str(getattr(entry, "message", entry)))

        try:
            target = apprise.Apprise()
            if not target.add(url):
                results[i] = Delivery(masked, False, "not a URL Apprise understands")
                return
            # Apprise says why a send failed only in its log; 2.x hands this call's lines to a callback.
            extra: dict[str, Any] = {}
            if "log_callback" in inspect.signature(target.notify).parameters:
                extra = {"log_callback": keep, "log_level": logging.WARNING, "timeout": deadline}
            ok = bool(target.notify(body=body, title=title, **extra))
        except Exception as exc:  # a plugin's own bug is this target's failure, not the sender's
            results[i] = Delivery(masked, False, scrub(f"{type(exc).__name__}: {exc}", url))
            return
        why = scrub(lines[-1], url) if lines else "the service did not accept it"
        results[i] = Delivery(masked, ok, None if ok else why)

    threads = [threading.Thread(target=one, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return [results.get(i) or Delivery(mask_url(u), False, f"no answer within {deadline:.0f} s")
            for i, u in enumerate(urls)]


def spawn(run_id: int, kind: str, run_dir: Path) -> int:
    """Start the sender for one alert, detached; returns its pid."""
    argv = [sys.executable, "-m", MODULE, str(run_id), kind, "--run-dir", str(run_dir)]
    with open(run_dir / "alerts.log", "ab") as errlog:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                                start_new_session=True, close_fds=True, cwd=str(run_dir))
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zerodeck-alert")
    p.add_argument("run_id", type=int)
    p.add_argument("kind", choices=["finished", "stalled", "lost"])
    p.add_argument("--run-dir", type=Path, required=True)
    args = p.parse_args(argv)
    from zerodeck.core.alerts.message import compose
    from zerodeck.core.launch.spec import JobSpec, SpecError
    from zerodeck.store.api import Store

    try:
        spec = JobSpec.read(args.run_dir)
    except SpecError as exc:
        print(f"zerodeck alert: run {args.run_id}: {exc}", file=sys.stderr)
        return 1
    store = Store.open(spec.store_url)
    run = store.run(args.run_id)
    if run is None or not spec.alert_urls:
        return 1
    detail = None
    if args.kind == "stalled":
        stalls = store.events(run.id, kinds=["stalled"])
        detail = stalls[-1].detail if stalls else None
    title, body = compose(run, args.kind, detail)
    for d in deliver(spec.alert_urls, title, body):
        summary = f"{args.kind} to {d.target}" + (f": {d.error}" if d.error else "")
        with contextlib.suppress(Exception):
            store.add_event(run.id, "alert_sent" if d.ok else "alert_failed",
                            {"summary": summary, "target": d.target, "about": args.kind, "error": d.error})
        if not d.ok:
            print(f"zerodeck alert: run {run.id}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # threads still stuck on a hanging target are left behind, not waited for
