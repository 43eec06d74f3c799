"""Chart figures (issue 17): a 10,000-point loss curve and a 50-run comparison, each timed as a fresh
process (interpreter start and the matplotlib import included): the chart functions alone, and the
commands on a store holding those runs, each with a LLaMA-Factory console evaluating ten times (`zerodeck
chart loss|peaks`, `compare --chart`: what a user waits for, the CLI's own start, the store read and
the eval loss read from the consoles as well, with matplotlib imported by the painter
process meanwhile); the import of matplotlib alone as the floor under the functions; and
`zerodeck --help` with the message catalogs, in English and in Chinese.

Target: each chart under 1 s, `--help` under 0.3 s. Prints the median of five runs per format; for
the chart functions also `written`: from the process's start to its file written, the import
included and the interpreter's teardown after it not (the painter, where commands draw, skips that).
Run: .venv/bin/python bench/bench_charts.py [--home DIR]
`--home DIR` keeps the seeded store in DIR and reuses it on the next run.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZD = str(Path(sys.executable).with_name("zerodeck"))
# A chart script's last line: when its file was written. The wall time after it is the interpreter's
# teardown, which the painter process (where commands draw) skips with os._exit.
DONE = "DONE "

LOSS_10K = """
import math
from zerodeck.core.export.chart_data import Curve
from zerodeck.core.export.charts import curves_chart
train = [(float(s), 2.5 * math.exp(-s / 3000) + 0.05 * math.sin(s / 7)) for s in range(1, 10001)]
evals = [(float(s), 2.4 * math.exp(-s / 3000)) for s in range(500, 10001, 500)]
curves_chart([Curve("#1 qwen2.5-7b-lora", train, evals)], OUT, FMT, title="Loss", ylabel="loss")
"""

LOSS_50 = """
import math
from zerodeck.core.export.chart_data import Curve
from zerodeck.core.export.charts import curves_chart
curves = [Curve(f"#{r} 配方-{r}", [(float(s), 2.5 * math.exp(-s / (300 + 7 * r))) for s in range(1, 1001)])
          for r in range(1, 51)]
curves_chart(curves, OUT, FMT, title="Loss", ylabel="loss")
"""

PEAKS_50 = """
from zerodeck.core.export.charts import peaks_chart
rows = [{"id": r, "name": f"qwen2.5-7b-lora-r{r}", "outcome": "succeeded" if r % 7 else "oom",
         "peak_max_gib": 20.0 + r % 40, "peak_mean_gib": 18.0 + r % 40, "capacity_gib": 64.0,
         "predicted_peak_gib": 21.0 + r % 40} for r in range(1, 51)]
peaks_chart(rows, OUT, FMT)
"""


def timed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float, float, float | None]:
    """(median wall seconds, median and least CPU seconds of the child, and the median seconds from
    its start to its DONE line, if it writes one): on a shared machine the wall time includes waiting
    for a core; the CPU time is what the chart costs, the least the closest to an idle machine."""
    walls, cpus, dones = [], [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start, t0 = time.time(), time.perf_counter()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[:3]} failed: {proc.stderr[-500:]}")
        dones += [float(line[len(DONE):]) - start for line in proc.stderr.splitlines() if line.startswith(DONE)]
    done = statistics.median(dones) if dones else None
    return statistics.median(walls), statistics.median(cpus), min(cpus), done


def lf_console(steps: int, eval_every: int, eval_batches: int = 25) -> str:
    """A LLaMA-Factory console as `zerodeck run` records it (the shapes of the captured
    tests/fixtures/logs/run_lf095_ds0198_zero3_cpu_eval_steps.log): a tqdm update per step, a loss
    dict every 10 steps, and every `eval_every` steps an evaluation with its own bar, then its dict."""
    def bar(n: int, total: int, lead: str = "") -> str:
        pct = 100 * n // total
        fill = "█" * (pct // 10)
        times = f"{n // 60:02d}:{n % 60:02d}<{(total - n) // 60:02d}:00"
        return f"\r{lead}{pct:3d}%|{fill:<10}| {n}/{total} [{times},  1.20s/it]"

    out = ["[INFO|trainer.py:1469] 2026-12-01 01:22:36,873 >>   Num Epochs = 1\n",
           f"[INFO|trainer.py:1476] 2026-12-01 01:22:36,873 >>   Total optimization steps = {steps}\n"]
    for s in range(1, steps + 1):
        out.append(bar(s, steps))
        if s % 10 == 0:
            out.append(f"\r{' ' * 45}\r{{'loss': '{2.5 * math.exp(-s / 3000):.4f}', 'grad_norm': '0.5172', "
                       f"'learning_rate': '9.3e-05', 'epoch': '{s / steps:.2f}'}}\n")
        if s % eval_every == 0:
            out.append("[INFO|trainer.py:2662] 2026-12-01 01:22:37,569 >> \n***** Running Evaluation *****\n\n")
            out += [bar(k, eval_batches, " ") for k in range(eval_batches + 1)]
            out.append(f"\x1b[A\r{' ' * 45}\r\n\r{' ' * 37}\r\x1b[A{{'eval_loss': '{2.4 * math.exp(-s / 3000):.4f}', "
                       f"'eval_runtime': '0.1313', 'eval_samples_per_second': '45.7', 'epoch': '{s / steps:.2f}'}}\n")
    return "".join(out) + "\n"


def seed(home: str) -> tuple[int, list[int]]:
    """A run with a 10,000-step loss curve and 50 runs of 1,000 steps each, through the store API
    (or the ones an earlier run left in `home`); returns (the long run's id, the 50 runs' ids)."""
    os.environ["ZERODECK_HOME"] = home
    os.environ.pop("ZERODECK_DB", None)
    from zerodeck.store.api import Store
    from zerodeck.store.records import CardPeakRecord

    store = Store.from_environment()
    runs = store.runs(newest_first=False)
    if (len(runs) == 51 and runs[0].name == "qwen2.5-7b-lora" and store.count_runs() == 51 and store.card_peaks(51)
            and all(r.log_path and Path(r.log_path).is_file() for r in runs)):
        return runs[0].id, [r.id for r in runs[1:]]
    store.save_snapshot(hash="bench", name="bench", toml="", source_path=None)

    def run(name: str, points: list[dict[str, float]]) -> int:
        rid = store.add_run(name=name, recipe_hash="bench", status="finished", outcome="succeeded")
        store.upsert_metrics(rid, points)
        # Its console, where `chart loss` reads the eval loss: an eval every tenth of the run.
        log = Path(home) / "logs" / f"{rid}.log"
        log.parent.mkdir(exist_ok=True)
        log.write_text(lf_console(len(points), len(points) // 10), encoding="utf-8")
        store.update_run(rid, log_path=str(log))
        return rid

    long = run("qwen2.5-7b-lora", [{"step": s, "loss": 2.5 * math.exp(-s / 3000) + 0.05 * math.sin(s / 7)}
                                  for s in range(1, 10001)])
    many = [run(f"配方-{r}", [{"step": s, "loss": 2.5 * math.exp(-s / (300 + 7 * r))} for s in range(1, 1001)])
            for r in range(1, 51)]
    for r, rid in enumerate(many):  # 8 NPU cards each, for the peaks chart and compare --chart
        store.update_run(rid, device="npu", cards=8)
        store.replace_telemetry(rid, [], [CardPeakRecord(source="npu-smi", card=str(c),
                                                         peak_mb=1024.0 * (20 + (r + c) % 40), total_mb=65536.0)
                                          for c in range(8)])
    return long, many


def main() -> None:
    keep = sys.argv[sys.argv.index("--home") + 1] if "--home" in sys.argv else None
    with tempfile.TemporaryDirectory() as scratch:
        tmp = keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "ZERODECK_DB"} | {"ZERODECK_HOME": tmp}
        # The font cache matplotlib builds on its first import on a machine is a one-time cost.
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, check=True)
        wall, cpu, least, _ = timed([sys.executable, "-c", "import matplotlib.figure"], env, repeat=5)
        print(f"import matplotlib.figure (floor)       wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms "
              f"(least {least * 1000:6.1f})")
        for name, code in (("loss, 10,000 points", LOSS_10K), ("loss, 50 runs overlaid", LOSS_50),
                           ("peaks, 50 runs", PEAKS_50)):
            for fmt in ("png", "svg", "pdf"):
                out = Path(tmp) / f"c.{fmt}"
                script = (f"OUT = {str(out)!r}\nFMT = {fmt!r}\n" + code
                          + f"import sys, time\nsys.stderr.write(f'{DONE}{{time.time()!r}}\\n')\n")
                wall, cpu, least, done = timed([sys.executable, "-c", script], env, repeat=5)
                size = out.stat().st_size // 1024
                print(f"chart {name:24} {fmt}  written {(done or 0) * 1000:7.1f} ms  wall {wall * 1000:7.1f} ms  "
                      f"cpu {cpu * 1000:7.1f} ms (least {least * 1000:6.1f})  {size:5d} KiB")
        t0 = time.perf_counter()
        long, many = seed(tmp)
        print(f"(store seeded: 1 run x 10,000 steps, 50 runs x 1,000 steps, each with its console, "
              f"in {time.perf_counter() - t0:.1f} s)")
        from zerodeck.core.outcome.evals import eval_points
        from zerodeck.store.api import Store

        log = Store.from_environment().run(long).log_path  # type: ignore[union-attr]
        reads = []
        for _ in range(5):
            t0 = time.perf_counter()
            found = eval_points(log)
            reads.append(time.perf_counter() - t0)
        print(f"eval loss from a 10,000-step console ({Path(str(log)).stat().st_size // 1024} KiB, "
              f"{len(found)} evals)  {statistics.median(reads) * 1000:6.1f} ms")
        fifty = [str(r) for r in many]
        for name, argv in (("chart loss, 10,000 points", ["chart", "loss", str(long)]),
                           ("chart loss, 50 runs", ["chart", "loss", *fifty]),
                           ("chart peaks, 50 runs", ["chart", "peaks", *fifty]),
                           ("compare 50 runs --chart", ["compare", *fifty, "--chart"])):
            for fmt in ("png", "svg", "pdf"):
                out = Path(tmp) / f"cli.{fmt}"
                cmd = [ZD, *argv, str(out)] if argv[-1] == "--chart" else [ZD, *argv, "-o", str(out)]
                wall, cpu, least, _ = timed(cmd, env, repeat=5)
                print(f"zerodeck {name:29} {fmt}  wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms "
                      f"(least {least * 1000:6.1f})  {out.stat().st_size // 1024:5d} KiB")
        for lang in ("en", "zh"):
            wall, cpu, least, _ = timed([ZD, "--help"], {**env, "ZERODECK_LANG": lang}, repeat=7)
            print(f"zerodeck --help ({lang})                  wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms "
                  f"(least {least * 1000:6.1f})")
        print(f"(fresh process each, interpreter start and imports included; load {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
