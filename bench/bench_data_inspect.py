"""Throughput and peak memory of `zerodeck data inspect` on a generated JSONL file.

Generates alpaca-shaped records (5 % exact duplicates, 2 % duplicates after whitespace/case
changes) in a temporary directory, runs the real command in a child process, prints MB/s and the
child's peak RSS, then deletes the file. Run: .venv/bin/python bench/bench_data_inspect.py [SIZE_MB]
(default 1024).
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(path: Path, size_mb: int) -> int:
    rng = random.Random(7)
    words = [f"w{i}" for i in range(5000)]
    target = size_mb * 1024 * 1024
    written = n = 0
    recent: list[str] = []
    with path.open("w", encoding="utf-8") as f:
        while written < target:
            r = rng.random()
            if recent and r < 0.05:
                line = rng.choice(recent)
            elif recent and r < 0.07:
                line = rng.choice(recent).upper().replace(" ", "  ")
            else:
                k = rng.randint(20, 400)
                rec = {"instruction": " ".join(rng.choices(words, k=k // 4)), "input": "",
                       "output": " ".join(rng.choices(words, k=k))}
                line = json.dumps(rec)
                recent = (recent + [line])[-1000:]
            f.write(line + "\n")
            written += len(line) + 1
            n += 1
    return n


def main() -> None:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    exe = Path(sys.executable).with_name("zerodeck")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = Path(d) / "bench.jsonl"
        t0 = time.perf_counter()
        lines = generate(path, size_mb)
        gen_s = time.perf_counter() - t0
        size = path.stat().st_size
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), "data", "inspect", str(path), "--model", "Qwen2.5-14B", "--json"],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        report = json.loads(proc.stdout) if proc.returncode == 0 else {}
    print(f"file: {size / 1e6:.0f} MB, {lines} lines (generated in {gen_s:.1f} s), deleted")
    print(f"exit {proc.returncode}; samples {report.get('samples')}, duplicates {report.get('duplicates')}, "
          f"length {report.get('length')}")
    print(f"wall {wall:.1f} s -> {size / 1e6 / wall:.1f} MB/s; peak RSS {rss_kb / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
