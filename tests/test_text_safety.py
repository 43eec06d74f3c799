"""Control characters in user text never reach a terminal or a document (issue 11, finding 5).

A recipe tag holding `ESC ] 0 ; title BEL` retitled the terminal and `ESC [ 2 J` cleared it when
`compare` printed its table. Every human output now shows such characters as visible escapes
(`\\x1b`); the data formats keep the value: JSON escapes it, CSV shows it like the tables do.
"""

from __future__ import annotations

import json
from pathlib import Path

from zerodeck.core.values import human, printable
from zerodeck.store.api import Store
from zerodeck.store.migrations import snapshot_axes
from zerodeck.store.records import CardPeakRecord

from tests.compare_seed import QWEN7_Z0

TITLE = "\x1b]0;pwned\x07"  # xterm: set the window title
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
CSI_C1 = "\x9b31m"  # the one-byte C1 CSI: red, on terminals that obey C1
BIDI = "\u202e"  # right-to-left override: "Trojan Source"
MODEL = "通义千问-7B"  # printable Unicode stays as it is
BIDI_CONTROLS = {chr(c) for c in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def raw_controls(text: str, allowed: str = "\n") -> set[str]:
    return {c for c in text if ((ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) and c not in allowed)
            or c in BIDI_CONTROLS}


def test_printable_escapes_controls_and_keeps_unicode() -> None:
    assert printable(f"a{TITLE}b") == "a\\x1b]0;pwned\\x07b"
    assert printable(CLEAR) == "\\x1b[2J\\x1b[H"
    assert printable(f"{CSI_C1}{BIDI}\x7f\x00") == "\\x9b31m\\u202e\\x7f\\x00"
    assert printable("a\tb\r\nc") == "a\\tb\\r\\nc"
    assert printable("a\tb\nc\x1b", keep="\n\t") == "a\tb\nc\\x1b"
    assert printable(MODEL) == MODEL and printable("Qwen2.5 7B ‘quoted’ — ok") == "Qwen2.5 7B ‘quoted’ — ok"
    assert human(f"tag{CLEAR}") == "tag\\x1b[2J\\x1b[H" and human(MODEL) == MODEL
    assert human(1234.5) == "1234" and human(None) == "-"


def seed_hostile(store: Store) -> int:
    toml = QWEN7_Z0.replace("Qwen2.5-7B", MODEL)
    store.save_snapshot(hash="hostile", name="hostile", toml=toml, source_path="recipes/hostile.toml")
    run_id = store.add_run(name="hostile", recipe_hash="hostile", status="finished", outcome="failed",
                           tags=[f"t{TITLE}", f"c{CLEAR}"], reason=f"boom {CSI_C1}{BIDI}gnp.exe",
                           backend="command", device="npu", cards=1, argv=["echo", f"x{CLEAR}"],
                           **snapshot_axes(toml))
    store.replace_telemetry(run_id, [], [CardPeakRecord(source="npu-smi", card=f"0{CLEAR}", peak_mb=1.0)])
    return run_id


def test_compare_in_every_format(cli, tmp_path: Path) -> None:
    seed_hostile(Store.from_environment())
    shown = {"table": r"t\x1b]0;pwned\x07", "md": r"t\\x1b\]0;pwned\\x07", "html": r"t\x1b]0;pwned\x07",
             "latex": r"t\textbackslash{}x1b]0;pwned\textbackslash{}x07"}
    for fmt, visible in shown.items():
        code, out, err = cli("compare", "--all", "--format", fmt)
        assert code == 0, err
        assert raw_controls(out) == set(), fmt
        assert visible in out and MODEL in out, fmt
    code, out, _ = cli("compare", "--all", "--format", "csv")
    assert code == 0 and raw_controls(out, allowed="\r\n") == set()
    assert "t\\x1b]0;pwned\\x07,c\\x1b[2J\\x1b[H" in out and MODEL in out
    code, out, _ = cli("compare", "--all", "--format", "json")
    assert code == 0 and raw_controls(out) == set()
    (row,) = json.loads(out)["rows"]
    assert row["tags"] == f"t{TITLE},c{CLEAR}" and row["reason"] == f"boom {CSI_C1}{BIDI}gnp.exe"  # data kept
    out_file = tmp_path / "report.md"
    code, _, err = cli("compare", "--all", "--format", "md", "-o", str(out_file))
    assert code == 0 and raw_controls(out_file.read_text(encoding="utf-8")) == set()


def test_runs_and_show(cli) -> None:
    run_id = seed_hostile(Store.from_environment())
    code, out, _ = cli("runs")
    assert code == 0 and raw_controls(out) == set() and "boom \\x9b31m\\u202egnp.exe" in out
    code, out, _ = cli("show", str(run_id))
    assert code == 0 and raw_controls(out) == set()
    assert "echo x\\x1b[2J\\x1b[H" in out and "peak 0\\x1b[2J\\x1b[H" in out
    code, out, _ = cli("runs", "--json")
    assert code == 0 and raw_controls(out) == set()  # JSON escapes C0 itself, C1 here
    assert json.loads(out)[0]["reason"] == f"boom {CSI_C1}{BIDI}gnp.exe"


def test_diagnose_excerpt_and_error_lines(cli, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(f"step 1\n{CLEAR}RuntimeError: NPU out of memory{TITLE}\n")
    code, out, err = cli("diagnose", str(log))
    assert raw_controls(out + err) == set() and "\\x1b[2J" in out
    recipe = tmp_path / "bad.toml"
    recipe.write_text(QWEN7_Z0.replace("cards = 8", f'cards = "8{CLEAR}"'))
    code, out, err = cli("recipes", "validate", str(recipe))
    assert code == 2 and raw_controls(out + err) == set()


def test_cards_error_line_from_a_tool(cli, tmp_path: Path, monkeypatch) -> None:
    tool = tmp_path / "bin" / "npu-smi"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\nprintf 'bad\\033[2J\\033]0;x\\007 thing\\n' >&2\nexit 3\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    code, out, err = cli("cards", "--once", "--source", "npu-smi")
    assert code == 1 and raw_controls(out + err) == set()
    assert err == "zerodeck: npu-smi: exited 3: bad\\x1b[2J\\x1b]0;x\\x07 thing\n"
    code, out, err = cli("cards", "--json", "--source", "npu-smi")
    assert json.loads(out)["error"] == "npu-smi: exited 3: bad\x1b[2J\x1b]0;x\x07 thing"
