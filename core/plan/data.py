"""Data advice before launch: how many samples, how many duplicates, how long, and is it enough.

Training sets are JSON arrays or JSONL files of alpaca (`instruction`/`input`/`output`) or sharegpt
(`conversations`/`messages`) records, often gigabytes. Both are streamed: JSONL line by line, a
JSON array element by element through `json.JSONDecoder.raw_decode` over a sliding buffer, so
memory grows with the sample count (a set of 64-bit hashes and an array of lengths, ~100 bytes per
sample), never with the file size. A line that does not parse is reported by number and the rest are still counted.

Recommended sizes follow the seed guidance for LoRA SFT on Qwen models (7B 20k, 14B 40k, 32B 80k,
72B 150k samples), interpolated linearly in parameter count between those anchors and scaled
proportionally outside them.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodeck.core.errors import BadInput
from zerodeck.core.i18n import _

if TYPE_CHECKING:
    from zerodeck.store.api import Store

ANCHORS = [(7_615_616_512, 20_000), (14_770_033_664, 40_000), (32_763_876_352, 80_000),
           (72_706_203_648, 150_000)]
FEW, MANY = 0.5, 3.0  # below half the recommendation: too few; over 3x: the model saturates
CHUNK = 1 << 20
MAX_RECORD = 256 << 20  # one JSON array element larger than this is not a training sample
MAX_BAD_REPORTED = 20


def recommended_samples(params: int) -> int:
    pts = ANCHORS
    if params <= pts[0][0]:
        return int(max(1000, round(pts[0][1] * params / pts[0][0], -2)))
    for (p0, s0), (p1, s1) in zip(pts, pts[1:]):
        if params <= p1:
            return int(round(s0 + (s1 - s0) * (params - p0) / (p1 - p0), -2))
    return int(round(pts[-1][1] * params / pts[-1][0], -2))


def data_verdict(samples: int, recommended: int) -> str:
    if samples < FEW * recommended:
        return "too_few"
    if samples > MANY * recommended:
        return "saturates"
    return "ok"


def advice_text(samples: int, recommended: int, model: str | None) -> str:
    v = data_verdict(samples, recommended)
    who = model or "the model"
    if v == "too_few":
        return (f"{samples} samples is far below the ~{recommended} recommended for {who}: expect "
                f"overfitting; gather more data or use a smaller model")
    if v == "saturates":
        return (f"{samples} samples is far above the ~{recommended} {who} can absorb: a smaller model "
                f"saturates, so consider a larger one or deduplicate / subsample")
    return f"{samples} samples is in range for {who} (~{recommended} recommended)"


@dataclass
class DataReport:
    path: str
    format: str  # jsonl | json
    shape: str  # alpaca | sharegpt | mixed | other | empty
    samples: int
    duplicates: int
    bad_lines: list[int] = field(default_factory=list)
    bad_count: int = 0
    lengths: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] | None = None
    model: str | None = None
    recommended_samples: int | None = None
    verdict: str | None = None
    advice: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    est_epoch_s: float | None = None
    samples_per_s: float | None = None
    bad_message: str | None = None

    @property
    def duplicate_ratio(self) -> float:
        return self.duplicates / self.samples if self.samples else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The `zerodeck data inspect --json` contract (ARCHITECTURE.md, "Contracts"), plus detail keys."""
        return {
            "path": self.path, "format": self.format, "shape": self.shape,
            "samples": self.samples, "duplicates": self.duplicates,
            "duplicate_ratio": round(self.duplicate_ratio, 4),
            "recommended_samples": self.recommended_samples, "verdict": self.verdict,
            "advice": self.advice, "model": self.model,
            "length": self.lengths, "tokens": self.tokens,
            "bad_lines": self.bad_lines, "bad_count": self.bad_count,
            "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "samples_per_s": self.samples_per_s, "est_epoch_s": self.est_epoch_s,
        }


def _texts(rec: Any) -> tuple[str, str]:
    """(shape, the record's text) for one sample."""
    if isinstance(rec, dict):
        conv = rec.get("conversations", rec.get("messages"))
        if isinstance(conv, list):
            parts = [str(m.get("value", m.get("content", ""))) if isinstance(m, dict) else str(m) for m in conv]
            if rec.get("system"):
                parts.insert(0, str(rec["system"]))
            return "sharegpt", "\n".join(parts)
        if "instruction" in rec or "output" in rec:
            parts = [str(rec.get(k) or "") for k in ("system", "instruction", "input", "output")]
            for turn in rec.get("history") or []:
                if isinstance(turn, list | tuple):
                    parts += [str(x) for x in turn]
            return "alpaca", "\n".join(p for p in parts if p)
        return "other", "\n".join(str(v) for v in rec.values() if isinstance(v, str))
    if isinstance(rec, str):
        return "other", rec
    return "other", json.dumps(rec, ensure_ascii=False)


def _jsonl(path: Path, bad: list[int]) -> Iterator[Any]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad.append(lineno)


def _json_array(path: Path, bad: list[int]) -> Iterator[Any]:
    dec = json.JSONDecoder()
    with path.open("r", encoding="utf-8", errors="strict") as f:
        buf = f.read(CHUNK)
        line = 1
        pos = buf.index("[") + 1
        eof = False
        while True:
            while True:  # skip whitespace and separators, keeping the line count
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    if buf[pos] == "\n":
                        line += 1
                    pos += 1
                if pos < len(buf) or eof:
                    break
                buf, pos = f.read(CHUNK), 0
                eof = not buf
            if pos >= len(buf) or buf[pos] == "]":
                return
            try:
                obj, end = dec.raw_decode(buf, pos)
            except ValueError:
                if eof or len(buf) - pos > MAX_RECORD:
                    bad.append(line)
                    return  # an array cannot be re-synchronised after a broken element
                more = f.read(CHUNK)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
                continue
            if end == len(buf) and not eof:
                # A number at the buffer's edge may continue in the next chunk.
                more = f.read(CHUNK)
                if more:
                    buf, pos = buf[pos:] + more, 0
                    continue
                eof = True
            line += buf.count("\n", pos, end)
            pos = end
            yield obj
            if pos > CHUNK:
                buf, pos = buf[pos:], 0


def _pct(sorted_vals: list[int], q: float) -> int:
    if not sorted_vals:
        return 0
    i = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return int(sorted_vals[i])


def _tokenizer(model_dir: Path | None) -> Any:
    """A fast tokenizer from a local model directory, when the `tokenizers` package is installed."""
    if model_dir is None or not (model_dir / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception:
        return None


def inspect_data(path: str | Path, model: str | None = None, *, store: Store | None = None) -> DataReport:
    """Stream a JSON / JSONL training file into a DataReport; BadInput when it is not JSON at all.

    With a model and a store, the epoch time is estimated from that model's recorded throughput."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(_("{path}: no such data file").format(path=p))
    arch = None
    model_dir = None
    if model:

        # plan.verdict imports this module at its top: a cycle at import time.
        from zerodeck.core.plan.verdict import resolve_model
        arch = resolve_model(model)
        if Path(model).expanduser().is_dir():
            model_dir = Path(model).expanduser()
    with p.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"[":
        fmt, reader = "json", _json_array
    elif head[:1] == b"{" or not head:
        fmt, reader = "jsonl", _jsonl
    else:
        raise BadInput(_("{path}: not a JSON or JSONL file (starts with {head!r})").format(path=p, head=head[:20]))
    tok = _tokenizer(model_dir)
    bad: list[int] = []
    seen: set[int] = set()
    lengths = array("I")
    tok_lengths = array("I")
    shapes: set[str] = set()
    dups = 0
    t0 = time.perf_counter()
    try:
        for rec in reader(p, bad):
            shape, text = _texts(rec)
            shapes.add(shape)
            lengths.append(len(text))
            norm = " ".join(text.lower().split())  # str.split is ~10x faster than a regex here
            h = int.from_bytes(hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
            if h in seen:
                dups += 1
            else:
                seen.add(h)
            if tok is not None:
                tok_lengths.append(len(tok.encode(text).ids))
    except UnicodeDecodeError as exc:
        raise BadInput(_("{path}: not UTF-8 text ({reason} at byte {at})").format(path=p, reason=exc.reason,
                                                                               at=exc.start)) from None
    seconds = time.perf_counter() - t0
    n = len(lengths)
    if n == 0 and bad:
        if fmt == "jsonl" and _is_one_object(p):
            raise BadInput(_("{path}: one JSON object, not a list of samples (expected a JSON array or JSONL)")
                           .format(path=p))
        raise BadInput(_("{path}:{line}: not JSON (no line parsed; not a JSON / JSONL file?)")
                       .format(path=p, line=bad[0]))
    srt = sorted(lengths)
    rep = DataReport(
        path=str(p), format=fmt, shape=(shapes.pop() if len(shapes) == 1 else ("mixed" if shapes else "empty")),
        samples=n, duplicates=dups, bad_lines=bad[:MAX_BAD_REPORTED], bad_count=len(bad),
        lengths={"p50": _pct(srt, 0.5), "p95": _pct(srt, 0.95), "max": srt[-1] if srt else 0},
        bytes=p.stat().st_size, seconds=seconds,
    )
    if tok_lengths:
        ts = sorted(tok_lengths)
        rep.tokens = {"p50": _pct(ts, 0.5), "p95": _pct(ts, 0.95), "max": ts[-1]}
    if arch is not None:
        rep.model = arch.name
        rep.recommended_samples = recommended_samples(arch.params())
        rep.verdict = data_verdict(n, rep.recommended_samples)
        rep.advice = advice_text(n, rep.recommended_samples, arch.name)
        rep.samples_per_s = recorded_throughput(store, arch.name) if store is not None else None
        if rep.samples_per_s:
            rep.est_epoch_s = round(n / rep.samples_per_s, 1)
    if bad and fmt == "json":
        rep.bad_message = (f"{p}: the array element at line {bad[0]} does not parse as JSON; counted the "
                           f"{n} before it (an array cannot be resumed after a broken element)")
    elif bad:
        where = ", ".join(str(b) for b in bad[:5]) + (" ..." if len(bad) > 5 else "")
        rep.bad_message = f"{p}: {len(bad)} line(s) do not parse as JSON (line {where}); counted the rest"
    return rep


def _is_one_object(p: Path) -> bool:
    """A pretty-printed single object fails line by line; say so instead of listing every line."""
    if p.stat().st_size > MAX_RECORD:
        return False
    try:
        return isinstance(json.loads(p.read_bytes()), dict)
    except ValueError:
        return False


def recorded_throughput(store: Store, model_name: str) -> float | None:
    """Median samples/s of this machine's runs of the same model (the run's `model` column)."""
    rates = store.throughputs(model_name)
    return round(statistics.median(rates), 3) if rates else None
