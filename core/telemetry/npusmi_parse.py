"""Parsers for `npu-smi` text: the `info` box table in every layout seen from 20.2 to 26.x, the
key : value sub-commands (`-t usages|common|board|...`, `-l`), the `-m` chip mapping, and the
DCMI error texts.

npu-smi has no JSON or CSV mode, and its tables drift between versions: widths 80 to 116, a
`Device` or `Phy-ID` second id column, HBM or DDR only, `41052/ 65536` with no space, hand-edited
or trailing-space lines, cut-off tables. So rows are split on `|` (never on fixed columns), and
cells are read as tokens where `a / b` is one pair. Nothing here raises on bad text: a parse that
finds no table returns an error string instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from zerodeck.core.telemetry.model import Card, Number, Process

_NA = {"", "na", "n/a", "-", "--", "[n/a]", "none"}
_PAIR_OR_TOKEN = re.compile(r"(\S+?)\s*/\s*(\S+)|(\S+)")
_NO_PROCS = re.compile(r"No running processes found in NPU\s+(\d+)", re.I)
_VERSION = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", re.I)
_DCMI = re.compile(r"dcmi\s+(?:module|model)\s+init\w*\s+failed[^\n]*?ret is\s*(-?\d+)", re.I)
_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")
_KV = re.compile(r"^\s*([^:]+?)\s*:\s?(.*?)\s*$")


def num(token: str | None) -> Number | None:
    """A printed number as int or float; NA, `-`, blank or anything else non-numeric is None."""
    if token is None:
        return None
    tok = token.strip()
    if tok.isascii() and tok.isdigit():  # the common case, fast
        return int(tok)
    if tok.lower() in _NA:
        return None
    try:
        value = float(tok)
    except ValueError:
        return None
    if value != value or abs(value) == float("inf"):
        return None
    if value.is_integer() and tok.lstrip("+-").isdigit():
        return int(value)  # "-5" stays an int, as "5" does
    return value


def _int(token: str | None) -> int | None:
    value = num(token)
    return value if isinstance(value, int) else None


def _text(token: str | None) -> str | None:
    if token is None:
        return None
    tok = token.strip()
    return None if tok.lower() in _NA else tok


def _tokens(cell: str) -> list[tuple[str, str | None]]:
    """`12.8  73  0 / 970` -> [("12.8", None), ("73", None), ("0", "970")]."""
    return [(c, None) if c else (a, b) for a, b, c in _PAIR_OR_TOKEN.findall(cell)]


def _scalar(toks: list[tuple[str, str | None]], i: int) -> str | None:
    if i < len(toks) and toks[i][1] is None:
        return toks[i][0]
    return None


def _pairs(toks: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in toks if b is not None]


@dataclass
class InfoTable:
    """What one `npu-smi info` output held."""

    cards: list[Card] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def dcmi_error(text: str) -> str | None:
    """The one-line state for npu-smi's DCMI failures (-8005 in containers, -8020 device in use)."""
    m = _DCMI.search(text)
    if not m:
        return None
    code = m.group(1)
    why = {"-8005": "driver not reachable (container without the device or driver mounted?)",
           "-8020": "device in use by another process"}.get(code, "see npu-smi")
    return f"npu-smi: dcmi initialisation failed (ret {code}): {why}"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        clean = "".join(ch if ch.isprintable() else "?" for ch in line.strip())
        if clean:
            return clean[:80]
    return ""


def _card_from_rows(top: list[str], bottom: list[str] | None, chip_cols: str) -> Card:
    card = Card()
    head = top[0].split(None, 1) if top else []
    card.npu = _int(head[0]) if head else None
    card.name = _text(head[1]) if len(head) > 1 else None
    card.health = _text(top[1]) if len(top) > 1 else None
    toks = _tokens(top[2]) if len(top) > 2 else []
    card.power_w = num(_scalar(toks, 0))
    card.temp_c = num(_scalar(toks, 1))
    pairs = _pairs(toks)
    if pairs:
        card.hugepages_used, card.hugepages_total = num(pairs[0][0]), num(pairs[0][1])
    if bottom is None:
        return card
    ids = bottom[0].split() if bottom else []
    card.chip = _int(ids[0]) if ids else None
    second = _int(ids[1]) if len(ids) > 1 else None
    if chip_cols == "device":
        card.device_id = second
    elif chip_cols == "phy":
        card.phy_id = second
    card.bus_id = _text(bottom[1]) if len(bottom) > 1 else None
    toks = _tokens(bottom[2]) if len(bottom) > 2 else []
    card.aicore_pct = num(_scalar(toks, 0))
    pairs = _pairs(toks)
    if pairs:
        card.memory_used_mb, card.memory_total_mb = num(pairs[0][0]), num(pairs[0][1])
    if len(pairs) > 1:
        card.hbm_used_mb, card.hbm_total_mb = num(pairs[1][0]), num(pairs[1][1])
    return card


def _process_from_row(cells: list[str], container_col: bool) -> Process | None:
    ids = cells[0].split()
    pid = _int(cells[1]) if len(cells) > 1 else None
    if not ids or pid is None:
        return None
    proc = Process(npu=_int(ids[0]), chip=_int(ids[1]) if len(ids) > 1 else None, pid=pid)
    proc.name = _text(cells[2]) if len(cells) > 2 else None
    proc.memory_mb = num(cells[3]) if len(cells) > 3 else None
    if container_col and len(cells) > 4:
        proc.container_pid = _int(cells[4])
    return proc


def parse_info(text: str) -> InfoTable:
    """Parse `npu-smi info` (the box table). Never raises; `error` says why nothing was found."""
    out = InfoTable()
    if not isinstance(text, str):
        out.error = "npu-smi: output is not text"
        return out
    section = ""
    chip_cols = ""
    container_col = False
    pending: list[list[str]] = []

    def flush() -> None:
        if pending:
            out.cards.append(_card_from_rows(pending[0], pending[1] if len(pending) > 1 else None, chip_cols))
            pending.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(("|", "+")):
            continue  # `...` elisions, prompts, blank lines
        if line.startswith("+"):
            if section == "cards":
                flush()
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        first = cells[0]
        m = _VERSION.search(first)
        if m:
            out.versions = {"npu-smi": m.group(1), "driver": m.group(2)}
            continue
        if first.startswith("NPU") and "Process id" in line:
            flush()
            section, container_col = "procs", "container" in line.lower()
            continue
        if first.startswith("NPU") and len(cells) > 1 and cells[1].startswith("Health"):
            flush()
            section = "cards"
            continue
        if first.startswith("Chip") and len(cells) > 1 and cells[1].startswith("Bus-Id"):
            lowered = first.lower()
            chip_cols = "device" if "device" in lowered else "phy" if "phy" in lowered else ""
            continue
        if not section and len(cells) == 3 and first[:1].isdigit():
            # An excerpt that starts below the header: card rows are the 3-cell ones.
            section = "cards"
            chip_cols = chip_cols or "phy"
        if section == "cards":
            if len(cells) < 2 or not first[:1].isdigit():
                continue
            if not pending and _BUS_ID.match(cells[1]):
                continue  # the lower half of a card whose upper half was cut off
            pending.append(cells)
            if len(pending) == 2:
                flush()
        elif section == "procs":
            if _NO_PROCS.search(first):
                continue
            proc = _process_from_row(cells, container_col)
            if proc is not None:
                out.processes.append(proc)
    flush()
    if not out.cards:
        out.error = dcmi_error(text) or (
            "npu-smi: empty output" if not text.strip()
            else f"npu-smi: no card table in the output: {_first_line(text)!r}")
    assign_logical_ids(out.cards)
    return out


def assign_logical_ids(cards: list[Card], mapping: dict[tuple[int, int], int] | None = None) -> None:
    """Logical ids as ASCEND_RT_VISIBLE_DEVICES counts them.

    `npu-smi info -m` (Chip Logic ID) is the authority when given; else the 310-era `Device`
    column; else the order of the table, which is what a container sees (its one NPU 6 is device 0).
    """
    for index, card in enumerate(cards):
        key = (card.npu, card.chip)
        if mapping and None not in key and key in mapping:
            card.logical_id = mapping[key]
        elif card.device_id is not None:
            card.logical_id = card.device_id
        else:
            card.logical_id = index


def parse_kv_blocks(text: str) -> list[dict[str, str]]:
    """The key : value sub-commands as blocks split at blank lines. Repeated keys (the MCU block of
    `-t common` repeats `Temperature(C)`) land in their own block; indents (tab or spaces) vary."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    if not isinstance(text, str):
        return blocks
    for raw in text.splitlines():
        if not raw.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        m = _KV.match(raw)
        if not m:
            continue
        key, value = " ".join(m.group(1).split()), m.group(2)
        if key in current:  # same key again without a blank line: a new block
            blocks.append(current)
            current = {}
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def parse_kv(text: str) -> dict[str, str]:
    """The first value of each key across all blocks, MCU blocks skipped."""
    merged: dict[str, str] = {}
    for block in parse_kv_blocks(text):
        if block.get("Chip Name", "").strip().lower() == "mcu":
            continue
        for key, value in block.items():
            merged.setdefault(key, value)
    return merged


# Keys of `-t usages` / `-t common` / `-t power` / `-t temp` / `-t board` that fill a Card field.
_KV_FIELDS = {
    "Aicore Usage Rate(%)": "aicore_pct",
    "NPU Real-time Power(W)": "power_w",
    "Power Dissipation(W)": "power_w",
    "Temperature(C)": "temp_c",
    "NPU Temperature (C)": "temp_c",
    "HBM Capacity(MB)": "hbm_total_mb",
    "DDR Capacity(MB)": "memory_total_mb",
    "Memory Capacity(MB)": "memory_total_mb",
    "PCIe Bus Info": "bus_id",
    "Health Status": "health",
    "NPU ID": "npu",
    "Chip ID": "chip",
}


def kv_card(text: str) -> Card:
    """A Card from a key : value sub-command; HBM used MB derived from capacity × usage rate, as
    `-t usages` only prints the rate."""
    kv = parse_kv(text)
    card = Card()
    for key, attr in _KV_FIELDS.items():
        if key not in kv or getattr(card, attr) is not None:
            continue
        value = kv[key]
        if attr in ("bus_id", "health"):
            setattr(card, attr, _text(value))
        elif attr in ("npu", "chip"):
            setattr(card, attr, _int(value))
        else:
            setattr(card, attr, num(value))
    rate = num(kv.get("HBM Usage Rate(%)"))
    if card.hbm_total_mb is not None and rate is not None:
        card.hbm_used_mb = round(card.hbm_total_mb * rate / 100)
    rate = num(kv.get("DDR Usage Rate(%)", kv.get("Memory Usage Rate(%)")))
    if card.memory_total_mb is not None and rate is not None:
        card.memory_used_mb = round(card.memory_total_mb * rate / 100)
    return card


def parse_map(text: str) -> dict[tuple[int, int], int]:
    """`npu-smi info -m`: (NPU ID, Chip ID) -> Chip Logic ID; MCU rows (logic id `-`) are left out.
    Columns are split on runs of 2+ spaces or tabs, as chip names hold single spaces."""
    mapping: dict[tuple[int, int], int] = {}
    if not isinstance(text, str):
        return mapping
    for raw in text.splitlines():
        parts = [p for p in re.split(r"\t|\s{2,}", raw.strip()) if p]
        if len(parts) < 3:
            continue
        npu, chip, logic = _int(parts[0]), _int(parts[1]), _int(parts[2])
        if npu is None or chip is None or logic is None:
            continue
        mapping[(npu, chip)] = logic
    return mapping


def parse_list(text: str) -> list[tuple[int, int | None]]:
    """`npu-smi info -l`: [(NPU ID, Chip Count)] in the order printed."""
    out: list[tuple[int, int | None]] = []
    for block in parse_kv_blocks(text):
        npu = _int(block.get("NPU ID"))
        if npu is not None:
            out.append((npu, _int(block.get("Chip Count"))))
    return out
