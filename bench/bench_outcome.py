"""How long outcome classification and metrics parsing take on a large training log.

Builds a ~50 MB log by repeating a real successful LLaMA-Factory console log (the fixtures), once
ending in success and once with a torchrun SIGKILL box appended, then times `diagnose` and
`parse_metrics` on each. Run: `.venv/bin/python bench/bench_outcome.py [MB]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from zerodeck.core.outcome import classify, diagnose, diagnose_file, parse_metrics

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "logs"


def build(target_mb: float) -> tuple[str, str]:
    body = (FIXTURES / "run_lf095_cpu_console.log").read_text(encoding="utf-8")
    # Only the training part repeats, so the success markers appear once, at the end.
    cut = body.index("***** train metrics *****")
    training, ending = body[:cut], body[cut:]
    reps = max(1, int(target_mb * 1e6 / len(training.encode())))
    big = training * reps
    ok = big + ending
    killed = big + (FIXTURES / "run_torch213_torchrun_childfailed_sigkill.log").read_text(encoding="utf-8")
    return ok, killed


def timed(label: str, fn, repeat: int = 3) -> None:
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:48s} {best * 1000:9.1f} ms   -> {result}")


def main() -> None:
    mb = float(sys.argv[1]) if len(sys.argv) > 1 else 50.0
    ok, killed = build(mb)
    print(f"log sizes: {len(ok.encode()) / 1e6:.1f} MB, {ok.count(chr(10)):,} lines")
    timed("diagnose (success log, no exit code)", lambda: diagnose(ok).outcome)
    timed("diagnose (SIGKILL log, exit 1)", lambda: diagnose(killed, exit_code=1).outcome)
    timed("diagnose (success log, exit 0)", lambda: diagnose(ok, exit_code=0).outcome)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.log"
        path.write_text(killed, encoding="utf-8")
        timed("diagnose_file (SIGKILL log on disk, exit 1)", lambda: diagnose_file(path, exit_code=1).outcome)
    full = classify.TAIL_CHARS
    classify.TAIL_CHARS = 10**12  # for comparison: the whole log scanned
    timed("diagnose, whole log scanned (no tail window)", lambda: diagnose(killed, exit_code=1).outcome, repeat=1)
    classify.TAIL_CHARS = full
    lines = ok.splitlines()
    timed("parse_metrics (all lines)", lambda: len(parse_metrics(lines).points), repeat=1)


if __name__ == "__main__":
    main()
