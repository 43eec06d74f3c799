"""compare/export: rows from runs stored through the real store, every format against a golden file.

Regenerate the goldens after an intended change with ZERODECK_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.compare import Selection, comparison_table, load_rows, pivot_table
from zerodeck.core.export.chart_data import memory_series
from zerodeck.core.export.tables import FORMATS, render
from zerodeck.store.api import Store
from zerodeck.store.migrations import snapshot_axes

from .compare_seed import DEMO, QWEN7_Z0, seed
from .conftest import FIXTURES

GOLDEN = FIXTURES / "compare" / "golden"
SUFFIX = {"table": "txt", "md": "md", "csv": "csv", "json": "json", "html": "html", "latex": "tex"}


def _read(path: Path, encoding: str = "utf-8") -> str:
    with open(path, encoding=encoding, newline="") as f:
        return f.read()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZERODECK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8", newline="")
    assert path.is_file(), f"{path} missing: run with ZERODECK_UPDATE_GOLDEN=1"
    assert text == _read(path), f"{name} differs from its golden file"


@pytest.fixture
def store(backend_url: str) -> Store:
    """The test's store, on SQLite and on PostgreSQL (conftest `backend_url`)."""
    return Store.from_environment()


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    return seed(store)


def _rows(**sel: Any) -> list[dict[str, Any]]:
    return load_rows(Store.from_environment(), Selection(**sel))


@pytest.mark.parametrize("fmt", FORMATS)
def test_comparison_matches_golden(seeded: dict[str, int], fmt: str) -> None:
    table = comparison_table(_rows(all=True))
    check_golden(f"compare.{SUFFIX[fmt]}", render(table, fmt))


@pytest.mark.parametrize("fmt", ["table", "md", "latex"])
def test_pivot_model_by_stage_matches_golden(seeded: dict[str, int], fmt: str) -> None:
    table = pivot_table(_rows(all=True), "model", "zero_stage", "peak_max_gib")
    check_golden(f"pivot_peak.{SUFFIX[fmt]}", render(table, fmt))


def test_diff_only_matches_golden(seeded: dict[str, int]) -> None:
    rows = _rows(refs=(str(seeded["z0"]), str(seeded["z3"])))
    check_golden("diff_only.md", render(comparison_table(rows, diff_only=True), "md"))


def test_rows_carry_measured_numbers(seeded: dict[str, int]) -> None:
    rows = {r["id"]: r for r in _rows(all=True)}
    z0, oom, demo = rows[seeded["z0"]], rows[seeded["oom"]], rows[seeded["demo"]]
    assert z0["peak_max_gib"] == round(31948.8 / 1024, 3)  # the card source, not the host's 180 GB
    assert z0["capacity_gib"] == 64.0 and z0["cards"] == 8 and z0["lora_rank"] == 8
    assert z0["tokens_per_s_card"] == round(22755.3 / 8, 2)
    assert z0["wall_time_s"] == 5400.5
    assert z0["command"] == "llamafactory-cli train /runs/1/train.yaml"
    assert z0["env"].startswith("ASCEND_RT_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 ")
    assert oom["failure"] == "oom: npu EL0004 rank 3" and oom["peak_pct"] == 100.0
    assert demo["command"] == "python -m zerodeck.core.train '--x=a b'"


def test_runs_of_different_recipes_whose_fields_differ_in_presence(seeded: dict[str, int]) -> None:
    rows = _rows(refs=(str(seeded["z0"]), str(seeded["demo"])))
    z0, demo = rows
    assert demo["lora_rank"] is None and demo["data_samples"] is None  # full fine-tuning; no count given
    assert demo["micro_batch"] == 4 and demo["offload"] == "none"  # a default the file left out
    assert z0["summary.note"] == "warm cache" and "summary.note" not in demo
    table = comparison_table(rows, diff_only=True)
    keys = [c.key for c in table.columns]
    assert keys[:2] == ["id", "name"]
    assert {"model", "method", "lora_rank", "zero_stage", "device", "summary.note", "summary.eval_loss"} <= set(keys)
    assert "offload" not in keys and "status" not in keys and "outcome" not in keys
    for fmt in FORMATS:
        text = render(table, fmt)
        assert "warm cache" in text, fmt
    data = json.loads(render(table, "json"))
    assert data["rows"][1]["summary.note"] is None and data["rows"][1]["lora_rank"] is None


def test_csv_round_trip_keeps_numbers_and_text(seeded: dict[str, int]) -> None:
    rows = _rows(all=True)
    table = comparison_table(rows)
    text = render(table, "csv")
    assert "\r\n" in text
    reader = list(csv.reader(io.StringIO(text, newline="")))
    assert reader[0] == [c.header for c in table.columns]
    assert "peak max/card (GiB)" in reader[0]
    assert len(reader) == len(rows) + 1
    for row, cells in zip(rows, reader[1:]):
        for col, cell in zip(table.columns, cells):
            value = row.get(col.key)
            if value is None:
                assert cell == ""
            elif col.numeric or isinstance(value, float | int):
                assert float(cell) == value, (col.key, cell)
            else:
                assert cell == value, (col.key, cell)
    # numbers are never quoted, so a spreadsheet reads them as numbers
    assert ",31.2," in text and ',"31.2",' not in text


def _hostile(store: Store) -> int:
    name = "<script>alert(1)</script> & 50%_a\\b"
    toml = ('name = "x"\n[model]\nname = "M_&%<b>\\\\x"\n[method]\nkind = "full"\n'
            "[hardware]\ndevice = \"cpu\"\ncards = 1\n")
    store.save_snapshot(hash="hostile", name=name, toml=toml, source_path=None)
    return store.add_run(name=name, recipe_hash="hostile", status="finished", outcome="failed",
                         reason="bad $x & {y} ~ ^ # <i>", argv=["sh", "-c", "echo <b>&amp;"], **snapshot_axes(toml))


def test_html_escapes_hostile_recipe_names(store: Store) -> None:
    _hostile(store)
    html = render(comparison_table(_rows(all=True)), "html")
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 50%_a\\b" in html
    assert "M_&amp;%&lt;b&gt;\\x" in html
    assert "echo &lt;b&gt;&amp;amp;" in html
    assert "<link" not in html and "src=" not in html  # one self-contained file
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        seen: set[str] = set()

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.seen.add(tag)

    parser = Tags()
    parser.feed(html)
    assert parser.seen == {"html", "head", "meta", "title", "style", "body", "h1", "table", "thead", "tr", "th",
                           "tbody", "td"}


def test_latex_escapes_hostile_recipe_names(store: Store) -> None:
    _hostile(store)
    tex = render(comparison_table(_rows(all=True)), "latex")
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{} \& 50\%\_a\textbackslash{}b" in tex
    assert r"M\_\&\%\textless{}b\textgreater{}\textbackslash{}x" in tex
    assert r"bad \$x \& \{y\} \textasciitilde{} \textasciicircum{} \# \textless{}i\textgreater{}" in tex
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    for line in body:
        for i, ch in enumerate(line):
            if ch in "%&_#$" and (i == 0 or line[i - 1] != "\\"):
                assert ch == "&" and line[i - 1:i + 2] == " & ", f"unescaped {ch!r} in {line!r}"
    assert "\\toprule" in tex and "\\bottomrule" in tex


def test_markdown_escapes_cells(store: Store) -> None:
    _hostile(store)
    md = render(comparison_table(_rows(all=True)), "md")
    assert "\\<script\\>" in md and "<script>" not in md
    assert "50%\\_a\\\\b" in md


def test_pivot_with_missing_cells(seeded: dict[str, int]) -> None:
    table = pivot_table(_rows(all=True), "model", "zero_stage", "outcome")
    assert [c.key for c in table.columns] == ["model", "zero_stage=0", "zero_stage=2", "zero_stage=3"]
    by_model = {r["model"]: r for r in table.rows}
    assert by_model["Qwen2.5-7B"] == {"model": "Qwen2.5-7B", "zero_stage=0": "succeeded", "zero_stage=2": None,
                                      "zero_stage=3": "succeeded"}
    assert by_model["Qwen2.5-14B"]["zero_stage=0"] == "oom" and by_model["Qwen2.5-14B"]["zero_stage=3"] is None
    data = json.loads(render(table, "json"))
    assert data["kind"] == "pivot" and data["rows"][0]["zero_stage=2"] is None
    reader = list(csv.reader(io.StringIO(render(table, "csv"), newline="")))
    assert reader[0] == ["model", "ZeRO stage 0", "ZeRO stage 2", "ZeRO stage 3"]
    assert ["Qwen2.5-14B", "oom", "", ""] in reader


def test_pivot_cell_with_several_runs_shows_the_latest(seeded: dict[str, int]) -> None:
    rows = _rows(all=True)
    later = dict(rows[0], id=99, peak_max_gib=40.0)
    table = pivot_table([*rows, later], "model", "zero_stage", "peak_max_gib")
    assert {r["model"]: r for r in table.rows}["Qwen2.5-7B"]["zero_stage=0"] == 40.0
    with pytest.raises(Exception, match="unknown field 'nope'"):
        pivot_table(rows, "model", "nope", "outcome")


def test_json_export_has_schema_version_and_units(seeded: dict[str, int]) -> None:
    data = json.loads(render(comparison_table(_rows(all=True)), "json"))
    assert data["schema_version"] == 1 and data["kind"] == "compare"
    cols = {c["key"]: c for c in data["columns"]}
    assert cols["peak_max_gib"]["unit"] == "GiB" and cols["tokens_per_s_card"]["unit"] == "tokens/s"
    assert len(data["rows"]) == 4 and data["rows"][0]["final_loss"] == 1.2345


def test_nan_loss_becomes_null_in_json(store: Store, seeded: dict[str, int]) -> None:
    store.update_run(seeded["demo"], final_loss=float("nan"))
    data = json.loads(render(comparison_table(_rows(all=True)), "json"))
    assert data["rows"][-1]["final_loss"] is None


def test_selection_latest_per_recipe_tag_grid(store: Store, seeded: dict[str, int]) -> None:
    again = store.add_run(name="demo-cpu-zero2", recipe_hash="hdemo", status="finished", outcome="killed",
                          tags=["demo"])
    latest = _rows()
    assert [r["id"] for r in latest] == [seeded["z0"], seeded["z3"], seeded["oom"], again]
    assert [r["id"] for r in _rows(tag="910b")] == [seeded["z0"], seeded["z3"]]
    assert [r["id"] for r in _rows(tag="9_0b")] == []  # LIKE wildcards in a tag are literal
    assert [r["id"] for r in _rows(grid="qwen2.5-14b-lora")] == [seeded["oom"]]
    assert [r["id"] for r in _rows(refs=("demo-cpu-zero2", str(seeded["z0"])))] == [again, seeded["z0"]]


# --- the command line -------------------------------------------------------------------------


def test_cli_compare_writes_file_with_format_from_suffix(cli, seeded: dict[str, int], tmp_path: Path) -> None:
    for suffix, fmt in (("md", "md"), ("csv", "csv"), ("json", "json"), ("html", "html"), ("tex", "latex")):
        target = tmp_path / f"report.{suffix}"
        code, out, err = cli("compare", "--all", "-o", str(target))
        assert code == 0 and out == "" and f"wrote {target}" in err
        enc = "utf-8-sig" if fmt == "csv" else "utf-8"
        assert _read(target, enc) == _read(GOLDEN / f"compare.{SUFFIX[fmt]}")
    assert (tmp_path / "report.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    code, _, err = cli("compare", "--all", "-o", str(tmp_path / "report.xyz"))
    assert code == 2 and "--format" in err


def test_cli_compare_json_and_pivot(cli, seeded: dict[str, int]) -> None:
    code, out, _ = cli("compare", "--tag", "910b", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)["rows"]] == [seeded["z0"], seeded["z3"]]
    code, out, _ = cli("compare", "--all", "--pivot", "model,zero_stage", "--value", "outcome")
    assert code == 0 and out.splitlines()[0].split() == ["model", "ZeRO", "stage", "0", "ZeRO", "stage", "2",
                                                          "ZeRO", "stage", "3"]
    code, out, _ = cli("compare", str(seeded["z0"]), str(seeded["z3"]), "--diff-only", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "run,recipe,ZeRO stage,predicted peak/card (GiB),peak max/card (GiB)," \
        "peak mean/card (GiB),peak/capacity (%),throughput (samples/s),throughput/card (tokens/s),step time (s)," \
        "wall time (s),final loss,started (UTC),summary.eval_loss,summary.note"


@pytest.mark.parametrize("argv, message", [
    (("compare", "12345"), "unknown run: 12345"),
    (("compare", "1", "777", "nosuch"), "unknown runs: 777, nosuch"),
    (("compare", "--all", "--value", "outcome"), "--value needs --pivot"),
    (("compare", "--all", "--pivot", "model"), "--pivot: expected ROW,COL"),
    (("compare", "--all", "--pivot", "model,stage"), "unknown field 'stage'"),
    (("compare", "--all", "--columns", "id,bogus"), "unknown column: bogus"),
    (("compare", "--all", "--json", "--format", "csv"), "disagree"),
    (("chart", "peaks", "--all", "-o", "x.jpg"), "PNG, SVG or PDF"),
])
def test_cli_bad_input_is_one_line_exit_2(cli, seeded: dict[str, int], argv: tuple[str, ...], message: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_no_runs_says_so(cli) -> None:
    code, out, err = cli("compare")
    assert code == 1 and out == "" and "no runs recorded yet" in err
    seed(Store.from_environment())
    code, out, err = cli("compare", "--tag", "nope")
    assert code == 1 and "no runs with tag 'nope'" in err


def test_csv_cells_that_look_like_formulas_stay_text(store: Store) -> None:
    store.save_snapshot(hash="f", name="f", toml="", source_path=None)
    store.add_run(name="=HYPERLINK(\"http://x\")", recipe_hash="f", status="queued", reason="+1 then -rm",
                  outcome_code="-9", outcome="killed")
    reader = list(csv.DictReader(io.StringIO(render(comparison_table(_rows(all=True)), "csv"), newline="")))
    assert reader[0]["recipe"] == "'=HYPERLINK(\"http://x\")"
    assert reader[0]["reason"] == "'+1 then -rm"
    assert reader[0]["failure class"] == "killed: -9"


def test_long_memory_series_is_thinned_but_keeps_its_peak() -> None:
    samples = [(float(t), "npu-smi", "0", 1000.0 + (30000.0 if t == 4321 else 0.0), 65536.0) for t in range(20000)]
    series, cap = memory_series(samples)
    line = series["npu-smi 0"]
    assert len(line) <= 2000 and cap == 64.0
    assert max(g for _, g in line) == (1000.0 + 30000.0) / 1024


@pytest.mark.parametrize("toml, axes", [
    (QWEN7_Z0, {"model": "Qwen2.5-7B", "method": "lora", "lora_rank": 8, "zero_stage": 0, "offload": "none",
                "micro_batch": 1, "seq_len": 2048, "data_samples": 20000}),
    (DEMO, {"model": "zerodeck-tiny", "method": "full", "lora_rank": None, "zero_stage": 2, "offload": "none",
            "micro_batch": 4, "seq_len": 64, "data_samples": None}),
    ('name = "p"\n[model]\npath = "/models/Qwen2.5-0.5B/"\n',
     {"model": "Qwen2.5-0.5B", "method": "lora", "lora_rank": 8, "zero_stage": 0, "offload": "none",
      "micro_batch": 1, "seq_len": 2048, "data_samples": None}),
    ("", {}),  # an empty snapshot states nothing: no invented defaults
    ("name = [", {}),
])
def test_migrated_axes_are_what_compare_read_from_the_snapshot(toml: str, axes: dict[str, Any]) -> None:
    # Runs recorded before the axis columns get them from migration 2; compare then shows what it
    # showed when it parsed each snapshot itself (the recipe model's defaults for keys left out).
    assert snapshot_axes(toml) == axes


def test_cli_tables_and_compare_read_a_number_the_same() -> None:
    from zerodeck.core.cli.output import render_table
    from zerodeck.core.compare import Column, Table
    from zerodeck.core.export.text import to_text
    from zerodeck.core.values import human

    values = [31.0, 0.125, 1.2345, 22755.3, 0.0, 64.0, float("nan"), 7, None, True]
    cli_cells = [line.strip() for line in render_table([{"v": v} for v in values], ["v"]).splitlines()[1:]]
    table = Table("t", [Column("v", "v", kind="num")], [{"v": v} for v in values])
    compare_cells = [line.strip() for line in to_text(table).splitlines()[1:]]
    assert cli_cells == compare_cells == [human(v) for v in values]
    # before one formatter, `zerodeck runs` printed 31.0 as "31" and 0.125 as "0.12"
    assert cli_cells[:4] == ["31.00", "0.125", "1.23", "22755"]
