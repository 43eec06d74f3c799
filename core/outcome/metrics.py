"""Metric points and a run summary from whatever a training run prints.

One run's log mixes formats: LLaMA-Factory's `trainer_log.jsonl` lines, the HF Trainer's console dicts
(floats in transformers 4, strings in 5: `{'loss': '6.412', ...}`), its final `train_runtime` dict and
`***** train metrics *****` block, tqdm bars (the only place the console gives the step number and an
ETA), DeepSpeed's `step=N, skipped=0, lr=[...]` and timer lines, ms-swift's dicts and `logging.jsonl`
lines (the HF keys plus `'global_step/max_steps': '5/100'`, `'memory(GiB)'`, `'elapsed_time': '1h 2m 3s'`,
`'remaining_time'`, `'train_speed(iter/s)'` in 3.x or `'train_speed(s/it)'` in 4.x), and zerodeck's own
JSON lines. The
supervisor tails the log while the run goes and needs live progress, so the parser is incremental
(`MetricsFollower`), and `parse_metrics` just feeds it every line.

Logs are untrusted text: multi-rank runs print everything twice (points are merged by step), lines
carry `[rankN]:` or timestamp prefixes, the last line may be half written, and nothing here raises
on garbage. A NaN loss stays NaN so a divergence stays visible.

A step may be reported more than once with more columns (DeepSpeed's step line, then its timer line):
`feed` returns the merged point again, so store writers should upsert by step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POINT_KEYS = ("step", "t", "loss", "lr", "epoch", "grad_norm", "samples_per_s", "tokens_per_s", "mem_gib")
SUMMARY_KEYS = ("steps_done", "steps_total", "final_loss", "samples_per_s", "tokens_per_s", "step_time_s",
                "train_runtime_s")

_JSON_DECODER = json.JSONDecoder()
_HF_DICT = re.compile(r"\{'[^{}\n]*\}")
# Keys as ms-swift writes them too: `'global_step/max_steps'`, `'memory(GiB)'`, `'train_speed(s/it)'`.
_HF_ITEM = re.compile(r"'(\w[\w/()%.-]*)':\s*('[^']*'|[^,}]+)")
SWIFT_PROGRESS = "global_step/max_steps"
_SWIFT_STEPS = re.compile(r"^\s*'?(\d+)/(\d+)'?\s*$")
_SWIFT_TIME = re.compile(r"^\s*'?(?:(\d+)d ?)?(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+(?:\.\d+)?)s)?'?\s*$")
_TQDM = re.compile(
    r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)\s*\[([\d:]+)<([\d:?]+),\s*([\d.]+|\?)\s*(it/s|s/it)"
)
_BAR_PREFIX_OK = re.compile(r"^\s*(?:\[\d+\]\s*)?(?:\[rank\d+\]:\s*)?$")
_TOTAL_STEPS = re.compile(r"Total optimization steps = ([\d,]+)")
_NUM_EPOCHS = re.compile(r"Num Epochs = ([\d,]+)")
_TRAIN_BATCH = re.compile(r"Total train batch size \(w\. parallel, distributed & accumulation\) = ([\d,]+)")
_DS_STEP = re.compile(r"\bstep=(\d+), skipped=(\d+), lr=\[([^\],]+)")
_DS_TIMER = re.compile(
    r"global_step=(\d+), RunningAvgSamplesPerSec=([\d.eE+-]+), CurrSamplesPerSec=([\d.eE+-]+)"
    r"(?:, MemAllocated=([\d.]+)GB, MaxMemAllocated=([\d.]+)GB)?"
)
_DS_TIME = re.compile(r"\[(\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d[,.]\d+)\]")
_METRICS_HEADER = re.compile(r"\*{5} (\w+) metrics \*{5}")
_METRICS_ITEM = re.compile(r"^\s*(?:\[rank\d+\]:\s*)?(\w+)\s+=\s+(\S+)\s*$")


@dataclass
class Metrics:
    """What `parse_metrics` found: per-step points (MetricPoint columns) and a run summary."""

    points: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    """A float from a JSON number or an HF string value; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().strip("'\"")
        try:
            return float(text)
        except ValueError:
            return _duration(text)
    return None


def _swift_time(value: Any) -> float | None:
    """ms-swift's `format_time`: `'3h 38m 49s'`, `'1d 2h 0m 5s'`, `'0s'` -> seconds; None otherwise."""
    if not isinstance(value, str):
        return None
    m = _SWIFT_TIME.match(value)
    if m is None or not any(m.groups()):
        return None
    d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + sec


def _int(value: Any) -> int | None:
    number = _num(value)
    if number is None or not math.isfinite(number):
        return None
    return int(number)


def _duration(text: Any) -> float | None:
    """`0:36:58.55`, `1:22:40`, `00:57` -> seconds; None when it is not a duration."""
    if not isinstance(text, str) or ":" not in text:
        return None
    parts = text.strip().split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    if len(numbers) > 3 or any(n < 0 for n in numbers):
        return None
    seconds = 0.0
    for n in numbers:
        seconds = seconds * 60 + n
    return seconds


class MetricsFollower:
    """Feed it log lines as they arrive; it keeps the points and the live summary."""

    def __init__(self) -> None:
        self._points: dict[int, dict[str, Any]] = {}
        self._partial = ""
        self._steps_total: int | None = None
        self._epochs_total: float | None = None
        self._status_step: int | None = None  # a step known from a status line with no metrics
        self._bar: tuple[int, int, float | None, float | None, float | None] | None = None  # n, total, t, eta, s/step
        self._elapsed: float | None = None
        self._eta: float | None = None
        self._final: dict[str, float | None] = {}
        self._block: str | None = None  # inside `***** train metrics *****`
        self._resolutions: dict[str, float] = {}
        self._batch: int | None = None  # samples per optimizer step (HF "Total train batch size")
        self._clock_day: str | None = None
        self._clock_start: float | None = None
        self._clock_now: float | None = None
        self._evals: dict[int, float] = {}  # step -> eval loss (HF eval dicts, LLaMA-Factory eval lines)

    # -- input -------------------------------------------------------------------------------------
    def feed(self, line: str) -> list[dict[str, Any]]:
        """Parse one line; return the points it created or completed (copies)."""
        touched: dict[int, None] = {}
        if not isinstance(line, str):
            return []
        for segment in line.rstrip("\n").split("\r"):
            try:
                for step in self._segment(segment):
                    touched[step] = None
            except (ValueError, TypeError, OverflowError, KeyError, IndexError, RecursionError):
                # Untrusted text: a line we cannot make sense of carries no metrics.
                continue
        return [dict(self._points[s]) for s in touched if s in self._points]

    def feed_text(self, chunk: str) -> list[dict[str, Any]]:
        """Feed raw text as read from a growing file: a trailing partial line waits for its end."""
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        out: list[dict[str, Any]] = []
        for line in lines:
            out.extend(self.feed(line))
        return out

    def flush(self) -> list[dict[str, Any]]:
        """Parse a held partial line (the file ended without a newline)."""
        rest, self._partial = self._partial, ""
        return self.feed(rest) if rest else []

    # -- output ------------------------------------------------------------------------------------
    @property
    def eval_points(self) -> list[tuple[int, float]]:
        """(step, eval loss) of every evaluation the log reported, by step."""
        return sorted(self._evals.items())

    @property
    def steps_total(self) -> int | None:
        """The optimizer steps the log announced (HF's `Total optimization steps`, ms-swift's
        `global_step/max_steps`, ...): a progress bar with another total is not the training's."""
        return self._steps_total

    @property
    def points(self) -> list[dict[str, Any]]:
        return [dict(p) for p in sorted(self._points.values(), key=lambda p: p["step"])]

    def summary(self) -> dict[str, Any]:
        """SUMMARY_KEYS (None when unknown) plus live progress: eta_s, percent, last_loss, train_loss, epoch."""
        points = self.points
        steps_done = max([p["step"] for p in points] + [s for s in (self._status_step, self._bar_step) if s],
                         default=None)
        final_steps = _int(self._final.get("steps"))
        if final_steps is not None:
            steps_done = max(steps_done or 0, final_steps)
        steps_total = self._steps_total or (self._bar[1] if self._bar else None)
        losses = [p["loss"] for p in points if p.get("loss") is not None]
        last_loss = losses[-1] if losses else None
        final_loss = last_loss if last_loss is not None else self._final.get("train_loss")
        runtime = self._final.get("train_runtime")
        samples = self._final.get("samples_per_s") or _last(points, "samples_per_s")
        if samples is None and self._batch and self._bar and self._bar[4]:
            # Live HF/LLaMA-Factory runs: tqdm's smoothed step rate times the samples per step.
            samples = self._batch / self._bar[4]
        tokens = self._final.get("tokens_per_s") or _last(points, "tokens_per_s")
        step_time = self._step_time(points, steps_done, runtime)
        eta = self._eta
        if eta is None and steps_total and steps_done is not None and step_time is not None:
            eta = max(steps_total - steps_done, 0) * step_time
        if runtime is not None:
            eta = 0.0
        percent = None
        if steps_total and steps_done is not None:
            percent = round(100.0 * min(steps_done, steps_total) / steps_total, 2)
        return {
            "steps_done": steps_done,
            "steps_total": steps_total,
            "final_loss": final_loss,
            "samples_per_s": samples,
            "tokens_per_s": tokens,
            "step_time_s": step_time,
            "train_runtime_s": runtime,
            "train_loss": self._final.get("train_loss"),
            "epoch": self._final.get("epoch") or _last(points, "epoch"),
            "last_loss": last_loss,
            "eta_s": eta,
            "percent": percent,
        }

    def metrics(self) -> Metrics:
        return Metrics(points=self.points, summary=self.summary())

    @property
    def _bar_step(self) -> int | None:
        return self._bar[0] if self._bar else None

    def _step_time(self, points: list[dict[str, Any]], steps_done: int | None, runtime: float | None) -> float | None:
        steps_per_s = self._final.get("steps_per_s")
        if steps_per_s:
            return 1.0 / steps_per_s
        if runtime is not None and steps_done:
            return runtime / steps_done
        timed = [p for p in points if p.get("t") is not None]
        if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"]:
            return (timed[-1]["t"] - timed[0]["t"]) / (timed[-1]["step"] - timed[0]["step"])
        if self._bar and self._bar[4] is not None:
            return self._bar[4]
        if timed and timed[-1]["step"] > 0 and timed[-1]["t"]:
            return float(timed[-1]["t"]) / timed[-1]["step"]
        return None

    # -- parsing -----------------------------------------------------------------------------------
    def _segment(self, seg: str) -> list[int]:
        if self._block is not None:
            m = _METRICS_ITEM.match(seg)
            if m:
                if self._block == "train":
                    self._final_value(m.group(1), m.group(2))
                return []
            self._block = None
        header = _METRICS_HEADER.search(seg) if "***** " in seg else None
        if header:
            self._block = header.group(1)
            return []
        touched: list[int] = []
        if '{"' in seg:
            touched += self._json(seg)
        if "{'" in seg:
            touched += self._hf_dicts(seg)
        if "%|" in seg:
            self._tqdm(seg)
        if seg.startswith("[20"):
            self._clock(seg)
        if "step=" in seg:
            touched += self._deepspeed(seg)
        if "Total optimization steps" in seg:
            m = _TOTAL_STEPS.search(seg)
            if m:
                self._steps_total = int(m.group(1).replace(",", ""))
        if "Total train batch size" in seg:
            m = _TRAIN_BATCH.search(seg)
            if m:
                self._batch = int(m.group(1).replace(",", ""))
        if "Num Epochs" in seg:
            m = _NUM_EPOCHS.search(seg)
            if m:
                self._epochs_total = float(m.group(1).replace(",", ""))
        return touched

    def _merge(self, step: int | None, values: dict[str, Any]) -> list[int]:
        if step is None or step < 0:
            return []
        clean = {k: v for k, v in values.items() if k in POINT_KEYS and v is not None}
        if not any(k in clean for k in POINT_KEYS if k not in ("step", "t", "epoch")):
            # A status line (no metric at all) moves progress but is not a point.
            self._status_step = max(step, self._status_step or 0)
            return []
        point = self._points.setdefault(step, {k: None for k in POINT_KEYS})
        point.update(clean)
        point["step"] = step
        return [step]

    def _json(self, seg: str) -> list[int]:
        start = seg.find('{"')
        obj, _ = _JSON_DECODER.raw_decode(seg, start)
        if not isinstance(obj, dict):
            return []
        kind = obj.get("zerodeck")
        if kind == "step":
            if _int(obj.get("rank")) not in (None, 0):
                return []
            if _int(obj.get("total_steps")):
                self._steps_total = _int(obj.get("total_steps"))
            mem = _num(obj.get("peak_mem_mb"))
            return self._merge(_int(obj.get("step")), {
                "t": _num(obj.get("t")), "loss": _num(obj.get("loss")), "lr": _num(obj.get("lr")),
                "epoch": _num(obj.get("epoch")), "grad_norm": _num(obj.get("grad_norm")),
                "samples_per_s": _num(obj.get("samples_per_s")), "tokens_per_s": _num(obj.get("tokens_per_s")),
                "mem_gib": mem / 1024.0 if mem is not None else None,
            })
        if kind == "done":
            for key, ours in (("steps", "steps"), ("train_runtime", "train_runtime"), ("train_loss", "train_loss"),
                              ("samples_per_s", "samples_per_s"), ("tokens_per_s", "tokens_per_s")):
                if _num(obj.get(key)) is not None:
                    self._final[ours] = _num(obj.get(key))
            return []
        if SWIFT_PROGRESS in obj:  # ms-swift logging.jsonl
            return self._swift(obj)
        if "current_steps" in obj:  # LLaMA-Factory trainer_log.jsonl
            self._eval(_int(obj.get("current_steps")), obj.get("eval_loss"))
            total = _int(obj.get("total_steps"))
            if total:
                self._steps_total = total
            elapsed = _duration(obj.get("elapsed_time"))
            remaining = _duration(obj.get("remaining_time"))
            if remaining is not None:
                self._eta = remaining
            lr = obj.get("lr", obj.get("learning_rate"))
            return self._merge(_int(obj.get("current_steps")), {
                "t": elapsed, "loss": _num(obj.get("loss")), "lr": _num(lr), "epoch": _num(obj.get("epoch")),
                "grad_norm": _num(obj.get("grad_norm")), "tokens_per_s": _num(obj.get("throughput")),
            })
        return []

    def _hf_dicts(self, seg: str) -> list[int]:
        touched: list[int] = []
        for m in _HF_DICT.finditer(seg):
            items = {k: v.strip() for k, v in _HF_ITEM.findall(m.group(0))}
            if SWIFT_PROGRESS in items:
                touched += self._swift(items)
            elif "train_runtime" in items:
                for key, value in items.items():
                    self._final_value(key, value)
            elif "eval_loss" in items:
                self._eval(self._hf_step(items) if self._points or self._bar else None, items["eval_loss"])
            elif "loss" in items:
                touched += self._merge(self._hf_step(items), {
                    "t": self._bar[2] if self._bar else None,
                    "loss": _num(items.get("loss")), "lr": _num(items.get("learning_rate")),
                    "epoch": _num(items.get("epoch")), "grad_norm": _num(items.get("grad_norm")),
                })
        return touched

    def _swift(self, items: dict[str, Any]) -> list[int]:
        """One ms-swift log dict (console or logging.jsonl): it names its own step and total."""
        m = _SWIFT_STEPS.match(str(items.get(SWIFT_PROGRESS, "")))
        if m is None:
            return []
        step, total = int(m.group(1)), int(m.group(2))
        if total:
            self._steps_total = total
        remaining = _swift_time(items.get("remaining_time"))
        if remaining is not None:
            self._eta = remaining
        if "train_runtime" in items:
            for key, value in items.items():
                self._final_value(key, str(value))
            self._status_step = max(step, self._status_step or 0)
            return []
        if "eval_loss" in items:
            self._eval(step, items["eval_loss"])
            return []
        if "loss" not in items:
            self._status_step = max(step, self._status_step or 0)
            return []
        return self._merge(step, {
            "t": _swift_time(items.get("elapsed_time")), "loss": _num(items.get("loss")),
            "lr": _num(items.get("learning_rate")), "epoch": _num(items.get("epoch")),
            "grad_norm": _num(items.get("grad_norm")), "mem_gib": _num(items.get("memory(GiB)")),
        })

    def _eval(self, step: int | None, value: Any) -> None:
        loss = _num(value)
        if step is not None and step >= 0 and loss is not None:
            self._evals[step] = loss

    def _hf_step(self, items: dict[str, str]) -> int:
        """The HF console dict has no step: take tqdm's, else map the epoch, else count."""
        if self._bar is not None:
            return self._bar[0]
        epoch = _num(items.get("epoch"))
        if epoch is not None and math.isfinite(epoch) and self._epochs_total and self._steps_total:
            return round(epoch / self._epochs_total * self._steps_total)
        return max(self._points, default=0) + 1

    def _final_value(self, key: str, value: str) -> None:
        """The final dict and the `train metrics` block round differently (`'3.151'` vs `0:00:03.15`,
        `'50.77'` vs `50.773`): keep whichever figure is finer."""
        names = {"train_runtime": "train_runtime", "train_samples_per_second": "samples_per_s",
                 "train_steps_per_second": "steps_per_s", "train_loss": "train_loss", "epoch": "epoch",
                 "train_tokens_per_second": "tokens_per_s"}
        if key not in names:
            return
        number = _num(value)
        if number is None:
            return
        name = names[key]
        resolution = _resolution(value)
        if name not in self._final or resolution <= self._resolutions.get(name, math.inf):
            self._final[name] = number
            self._resolutions[name] = resolution

    def _tqdm(self, seg: str) -> None:
        m = _TQDM.search(seg)
        if m is None or not _BAR_PREFIX_OK.match(seg[: m.start()]):
            return
        n, total = int(m.group(2)), int(m.group(3))
        if self._steps_total and total != self._steps_total:
            return
        rate = _num(m.group(6))
        per_step = None
        if rate:
            per_step = rate if m.group(7) == "s/it" else 1.0 / rate
        eta = _duration(m.group(5))
        self._bar = (n, total, _duration(m.group(4)), eta, per_step)
        if eta is not None:
            self._eta = eta

    def _clock(self, seg: str) -> None:
        """DeepSpeed's `[2026-11-28 03:05:49,223]` prefix: seconds since the first one in the log."""
        m = _DS_TIME.match(seg)
        if m is None:
            return
        h, mi, sec = int(m.group(2)), int(m.group(3)), float(m.group(4).replace(",", "."))
        day = m.group(1)
        if self._clock_day is None:
            self._clock_day = day
            self._clock_start = h * 3600 + mi * 60 + sec
        offset = 86400.0 if day != self._clock_day else 0.0  # a run crossing midnight once
        self._clock_now = round(offset + h * 3600 + mi * 60 + sec - (self._clock_start or 0.0), 3)

    def _deepspeed(self, seg: str) -> list[int]:
        touched: list[int] = []
        m = _DS_STEP.search(seg)
        if m and int(m.group(1)) > 0:  # step=0 is logged at initialisation, before any training
            t = self._clock_now if seg.startswith("[20") else None
            touched += self._merge(int(m.group(1)), {"lr": _num(m.group(3)), "t": t})
        timer = _DS_TIMER.search(seg)
        if timer:
            mem = _num(timer.group(5) or timer.group(4))
            self._final["samples_per_s"] = _num(timer.group(2))
            touched += self._merge(int(timer.group(1)), {"samples_per_s": _num(timer.group(3)), "mem_gib": mem})
        return touched


def _resolution(value: str) -> float:
    """How finely a printed number was rounded: `3.151` -> 0.001, `0:00:03.15` -> 0.01, `6.7e-05` -> 1e-06."""
    text = value.strip().strip("'\"").lower().split(":")[-1]
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".", 1)[1]) if "." in mantissa else 0
    try:
        shift = int(exponent) if exponent else 0
    except ValueError:
        shift = 0
    return 10.0 ** (shift - decimals)


def _last(points: list[dict[str, Any]], key: str) -> Any:
    for point in reversed(points):
        if point.get(key) is not None:
            return point[key]
    return None


def parse_metrics(lines: Iterable[str]) -> Metrics:
    """Every metric point and the summary from a log's lines (any mix of the supported formats)."""
    follower = MetricsFollower()
    for line in lines:
        follower.feed(line)
    return follower.metrics()


def parse_trainer_log_jsonl(path: str | Path) -> Metrics:
    """LLaMA-Factory's `trainer_log.jsonl` (both key generations: `lr` and the older `learning_rate`)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_metrics(fh)


def parse_results_json(path: str | Path) -> dict[str, Any]:
    """HF `train_results.json` / `all_results.json` as summary keys; None where the file has no value."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    steps_per_s = _num(data.get("train_steps_per_second"))
    return {
        "train_runtime_s": _num(data.get("train_runtime")),
        "samples_per_s": _num(data.get("train_samples_per_second")),
        "tokens_per_s": _num(data.get("train_tokens_per_second")),
        "step_time_s": 1.0 / steps_per_s if steps_per_s else None,
        "train_loss": _num(data.get("train_loss")),
        "epoch": _num(data.get("epoch")),
        "eval_loss": _num(data.get("eval_loss")),
    }


def parse_trainer_state_json(path: str | Path) -> Metrics:
    """HF `trainer_state.json`: `log_history` as points (it keeps `grad_norm` and the exact step), the
    final entry and `max_steps` as the summary. Garbage gives an empty Metrics."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    follower = MetricsFollower()
    history = data.get("log_history") if isinstance(data, dict) else None
    if isinstance(data, dict) and _int(data.get("max_steps")):
        follower._steps_total = _int(data.get("max_steps"))
    for entry in history if isinstance(history, list) else []:
        if not isinstance(entry, dict):
            continue
        if "train_runtime" in entry:
            for key, value in entry.items():
                follower._final_value(key, json.dumps(value))
            continue
        if "loss" in entry:
            follower._merge(_int(entry.get("step")), {
                "loss": _num(entry.get("loss")), "lr": _num(entry.get("learning_rate")),
                "epoch": _num(entry.get("epoch")), "grad_norm": _num(entry.get("grad_norm")),
            })
    if isinstance(data, dict) and _int(data.get("global_step")):
        follower._status_step = _int(data.get("global_step"))
    return follower.metrics()
