"""CLI start-up and catalog figures (issue: foundation).

Prints the wall time of `zerodeck --help`, `zerodeck recipes list --json` on the shipped catalog and
on 1,000 recipe files, and checks that --help loads neither torch nor deepspeed.
Run: .venv/bin/python bench/bench_cli.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZD = str(Path(sys.executable).with_name("zerodeck"))


def timed(argv: list[str], env: dict[str, str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ZERODECK_HOME": tmp}
        print(f"zerodeck --help                         {timed([ZD, '--help'], env) * 1000:7.1f} ms (median of 7)")
        print(f"zerodeck recipes list --json (shipped)  {timed([ZD, 'recipes', 'list', '--json'], env) * 1000:7.1f} ms")
        many = Path(tmp) / "many"
        many.mkdir()
        for i in range(1000):
            (many / f"r{i:04d}.toml").write_text(
                f'name = "r{i:04d}"\n[model]\nname = "Qwen2.5-7B"\n[zero]\nstage = {i % 4}\n'
                f'[data]\nsamples = {1000 + i}\n[train]\nseq_len = 2048\n'
            )
        env_many = {**env, "ZERODECK_RECIPES": str(many)}
        t = timed([ZD, "recipes", "list", "--json"], env_many, repeat=3)
        print(f"zerodeck recipes list --json (+1000)    {t * 1000:7.1f} ms")
        probe = ("import sys; from zerodeck.core.cli import build_parser; build_parser().format_help();"
                 "print(sorted(m for m in ('torch','deepspeed','textual','sqlalchemy') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
        print(f"modules loaded by --help among torch/deepspeed/textual/sqlalchemy: {out}")


if __name__ == "__main__":
    main()
