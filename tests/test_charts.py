"""Charts for reports (matplotlib): PNG checked against golden pixel statistics (size, ink, darkness:
not bytes, which move with matplotlib and FreeType releases), SVG and PDF well formed, CJK names
drawn, hostile names kept as text, the chart commands' contract, and matplotlib loaded only by them.

Regenerate the statistics after an intended change with ZERODECK_UPDATE_GOLDEN=1 and look at the PNGs
(written beside the statistics when updating).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from zerodeck.core.compare import Selection, load_rows
from zerodeck.core.export import fonts
from zerodeck.core.export.chart_data import Curve, MemoryPanel, chart_format, memory_series, thin
from zerodeck.store.api import Store

from .compare_seed import seed
from .conftest import FIXTURES, ROOT
from .import_probe import heavy_modules_loaded

charts = pytest.importorskip("zerodeck.core.export.charts")
GOLDEN = FIXTURES / "charts" / "golden.json"
SVG_NS = "{http://www.w3.org/2000/svg}"
CJK_NAME = "千问2.5-7B-中文微调"


@pytest.fixture
def store() -> Store:
    return Store.from_environment()


@pytest.fixture
def seeded(store: Store) -> dict[str, int]:
    return seed(store)


def _rows(store: Store) -> list[dict[str, Any]]:
    return load_rows(store, Selection(all=True))


def _png_stats(data: bytes) -> dict[str, Any]:
    from matplotlib.image import imread

    img = imread(io.BytesIO(data), format="png")
    grey = img[..., :3].mean(axis=2)
    return {"size": [int(img.shape[1]), int(img.shape[0])],
            "ink": round(float((grey < 0.95).mean()), 4),  # share of pixels that are not background
            "dark": round(float((grey < 0.35).mean()), 4),  # text, axes, black capacity lines
            "mean": round(float(grey.mean()), 4)}


def _render(draw: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    draw(buf, fmt)
    return buf.getvalue()


def _draws(store: Store, seeded: dict[str, int]) -> dict[str, Any]:
    rid = seeded["z0"]
    series, cap = memory_series(store.memory_series(rid))
    curves = [Curve("#1 qwen2.5-7b-lora-z0", [(float(s), 2.0 - s / 2000) for s in range(1, 1001)],
                    [(float(s), 1.9 - s / 2200) for s in range(100, 1001, 100)]),
              Curve("#2 qwen2.5-7b-lora-z3", [(float(s), 2.1 - s / 1800) for s in range(1, 1001)])]
    rows = _rows(store)
    return {
        "loss": lambda t, f: charts.curves_chart(curves, t, f, title="Loss", ylabel="loss"),
        "memory": lambda t, f: charts.memory_chart([MemoryPanel("#1", series, cap)], t, f, title="Run #1"),
        "peaks": lambda t, f: charts.peaks_chart(rows, t, f),
    }


def test_png_charts_match_golden_pixel_statistics(store: Store, seeded: dict[str, int]) -> None:
    stats = {name: _png_stats(_render(draw, "png")) for name, draw in _draws(store, seeded).items()}
    if os.environ.get("ZERODECK_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        for name, draw in _draws(store, seeded).items():
            (GOLDEN.parent / f"{name}.png").write_bytes(_render(draw, "png"))
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for name, got in stats.items():
        want = golden[name]
        assert got["size"] == want["size"], name
        # Tolerances absorb anti-aliasing and glyph shapes of another FreeType; a lost line, legend
        # or bar moves these by more.
        assert abs(got["ink"] - want["ink"]) <= 0.012, (name, got, want)
        assert abs(got["dark"] - want["dark"]) <= 0.006, (name, got, want)
        assert abs(got["mean"] - want["mean"]) <= 0.012, (name, got, want)
    assert stats["loss"]["size"] == [1080, 600]


def test_svg_and_pdf_are_well_formed_and_keep_text(store: Store, seeded: dict[str, int]) -> None:
    draws = _draws(store, seeded)
    for name, draw in draws.items():
        root = ET.fromstring(_render(draw, "svg"))
        assert root.tag == f"{SVG_NS}svg", name
        pdf = _render(draw, "pdf")
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF"), name
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, name
        assert re.search(rb"startxref\s+(\d+)", pdf), name
    svg = _render(draws["memory"], "svg").decode()
    texts = "".join(ET.fromstring(svg).itertext())
    assert "capacity 64 GiB" in texts and "npu-smi 0" in texts and "npu-smi 1" in texts
    assert "host" not in texts  # host memory left out beside card samples
    # The same runs give the same file: no date, fixed ids.
    assert _render(draws["peaks"], "svg") == _render(draws["peaks"], "svg")
    assert _render(draws["peaks"], "pdf") == _render(draws["peaks"], "pdf")


def test_lines_differ_without_colour() -> None:
    """Black-and-white print: every line of a chart up to 44 differs in dash pattern or marker."""
    styles = [charts.line_style(i)[1:] for i in range(44)]
    assert len(set(styles)) == 44


def test_hostile_names_stay_text(store: Store) -> None:
    name = "<script>alert(1)</script> & $x$ 50%_a\\b"
    ctrl = "evil\x1b[2J\x00name"
    store.save_snapshot(hash="hostile", name=name, toml="", source_path=None)
    rid = store.add_run(name=name, recipe_hash="hostile", status="finished", outcome="failed")
    rows = _rows(store)
    svg = _render(lambda t, f: charts.peaks_chart(rows, t, f, title="<b>&</b>"), "svg").decode()
    root = ET.fromstring(svg)
    assert "<script>" not in svg and "<b>" not in svg
    texts = "".join(root.itertext())
    assert f"#{rid} <script>alert(1)</script>" in texts
    # Control characters (an XML file cannot hold them) are shown as escapes; NaN / inf loss is a gap.
    svg = _render(lambda t, f: charts.curves_chart([Curve(ctrl, [(1.0, 1.0), (2.0, float("nan")), (3.0, float("inf")),
                                                                 (4.0, 0.5)])], t, f, title=ctrl, ylabel="y"),
                  "svg").decode()
    assert "evil\\x1b[2J\\x00name" in "".join(ET.fromstring(svg).itertext())
    assert _png_stats(_render(lambda t, f: charts.peaks_chart(
        [{"id": 1, "name": ctrl, "peak_max_gib": float("inf"), "capacity_gib": float("nan")}], t, f), "png"))
    # `$x$` is drawn as written, not as TeX math.
    svg = _render(lambda t, f: charts.curves_chart([Curve("a $x$ b", [(1.0, 1.0), (2.0, 0.5)])], t, f, title="t",
                                                   ylabel="y"), "svg").decode()
    assert "$x$" in "".join(ET.fromstring(svg).itertext())


def test_cjk_names_are_drawn_and_the_missing_font_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    curves = [Curve(f"#1 {CJK_NAME}", [(1.0, 2.0), (2.0, 1.5), (3.0, 1.2)])]
    monkeypatch.setattr(fonts, "_warned", False)
    monkeypatch.setattr(charts, "machine_cjk_family", lambda: None)
    said: list[str] = []
    without = _render(lambda t, f: charts.curves_chart(curves, t, f, title="损失", ylabel="loss", warn=said.append),
                      "png")
    _render(lambda t, f: charts.curves_chart(curves, t, f, title="损失", ylabel="loss", warn=said.append), "png")
    assert len(said) == 1 and "no CJK font" in said[0] and "fonts-noto-cjk" in said[0]
    assert _png_stats(without)["size"] == [1080, 600]
    # SVG keeps the text as text: the viewer's fonts draw it, nothing to warn about.
    monkeypatch.setattr(fonts, "_warned", False)
    svg = _render(lambda t, f: charts.curves_chart(curves, t, f, title="损失", ylabel="loss", warn=said.append),
                  "svg").decode("utf-8")
    assert CJK_NAME in "".join(ET.fromstring(svg).itertext()) and len(said) == 1


def test_a_cjk_font_on_the_machine_is_used() -> None:
    family = fonts.machine_cjk_family()
    if family is None:
        pytest.skip("no CJK font on this machine (apt install fonts-noto-cjk); the fallback test covers it")
    assert fonts.font_families([CJK_NAME], fmt="png", cjk_family=family) == [fonts.BASE_FAMILY, family]
    from matplotlib.font_manager import FontProperties, findfont

    assert "DejaVu" not in findfont(FontProperties(family=family), fallback_to_default=False)


def test_cjk_family_preference_and_detection() -> None:
    assert fonts.pick_cjk_family(["DejaVu Sans", "Noto Sans CJK JP", "WenQuanYi Micro Hei"]) == "WenQuanYi Micro Hei"
    assert fonts.pick_cjk_family(["Noto Sans CJK JP", "Noto Sans CJK SC"]) == "Noto Sans CJK SC"
    assert fonts.pick_cjk_family(["DejaVu Sans"]) is None
    # A chart with no CJK text never loads the CJK font (a fallback font costs time on every text).
    assert fonts.font_families(["Loss", "#1 qwen"], fmt="png", cjk_family="WenQuanYi Micro Hei") == ["DejaVu Sans"]
    assert fonts.has_cjk(CJK_NAME) and fonts.has_cjk("ＡＢ") and not fonts.has_cjk("qwen2.5-7b ±½ é")


def test_thin_keeps_extremes() -> None:
    pts = [(float(s), 1.0) for s in range(10_000)]
    pts[4321] = (4321.0, 9.0)
    pts[7000] = (7000.0, -3.0)
    out = thin(pts, limit=500)
    assert len(out) <= 520 and (4321.0, 9.0) in out and (7000.0, -3.0) in out
    assert [p[0] for p in out] == sorted(p[0] for p in out)


@pytest.mark.parametrize("name", ["x.jpg", "x", "x.svgz"])
def test_chart_format_refuses_other_suffixes(name: str) -> None:
    from zerodeck.core.errors import BadInput

    with pytest.raises(BadInput, match="PNG, SVG or PDF"):
        chart_format(name)
    assert chart_format("A.PNG") == "png" and chart_format("a.pdf") == "pdf"


def test_cli_chart_commands(cli, store: Store, seeded: dict[str, int], tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    # The HF Trainer's progress bar (the step) and its eval dict, as LLaMA-Factory prints them.
    log.write_text("".join(f" {s // 10}%|#####     | {s}/1000 [00:10<00:10,  1.00it/s]\n"
                           f"{{'eval_loss': {1.9 - s / 2200:.4f}, 'eval_runtime': 1.5, 'epoch': 0.5}}\n"
                           for s in (500, 1000)), encoding="utf-8")
    rid = seeded["z0"]
    store.update_run(rid, log_path=str(log))
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")):
        out = tmp_path / f"loss.{fmt}"
        code, _, err = cli("chart", "loss", str(rid), "-o", str(out))
        assert code == 0 and f"wrote {out}" in err, err
        assert out.read_bytes().startswith(magic)
    code, svg, err = cli("chart", "loss", str(rid), str(seeded["z3"]))
    assert code == 0 and "left out (nothing to draw): #2" in err
    assert "eval" in "".join(ET.fromstring(svg).itertext())
    code, _, err = cli("chart", "memory", str(rid), "-o", str(tmp_path / "m.pdf"))
    assert code == 0 and "2 series" in err
    code, _, err = cli("chart", "peaks", "--all", "-o", str(tmp_path / "p.png"))
    assert code == 0 and (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    # One run: a bar per card (the host's RAM left out), each against its card's capacity.
    code, svg, err = cli("chart", "peaks", str(rid))
    texts = "".join(ET.fromstring(svg).itertext())
    assert code == 0 and "Run #1 qwen2.5-7b-lora-z0: peak per card vs capacity" in texts
    assert all(f"npu-smi {c}" in texts for c in range(8)) and "host" not in texts
    assert "mean over cards" not in texts and "card capacity" in texts
    code, out, _ = cli("compare", "--all", "--chart", str(tmp_path / "c.png"), "--format", "md")
    assert code == 0 and out.startswith("### Comparison of 4 runs")
    assert _png_stats((tmp_path / "c.png").read_bytes())["size"][0] >= 1080
    code, _, err = cli("chart", "throughput", str(seeded["z3"]))
    assert code == 1 and "no throughput points" in err
    store.upsert_metrics(seeded["z3"], [{"step": s, "tokens_per_s": 2000.0 + s} for s in range(1, 50)])
    code, svg, _ = cli("chart", "throughput", str(seeded["z3"]))
    texts = "".join(ET.fromstring(svg).itertext())
    assert code == 0 and "tokens/s" in texts and "Throughput" in texts


def test_cli_memory_chart_has_a_panel_per_run(cli, store: Store, seeded: dict[str, int], tmp_path: Path) -> None:
    from zerodeck.store.records import SampleRecord

    store.replace_telemetry(seeded["z3"], [SampleRecord(t=float(t), source="npu-smi", card="0",
                                                        memory_used_mb=1000.0 * t, memory_total_mb=65536.0)
                                           for t in range(10)], [])
    out = tmp_path / "mem.svg"
    code, _, err = cli("chart", "memory", str(seeded["z0"]), str(seeded["z3"]), "-o", str(out))
    assert code == 0 and "3 series" in err
    texts = "".join(ET.fromstring(out.read_text(encoding="utf-8")).itertext())
    assert "Memory per card" in texts and "#1 qwen2.5-7b-lora-z0" in texts and "#2 qwen2.5-7b-lora-z3" in texts
    assert texts.count("capacity 64 GiB") == 2  # each panel its own capacity line


@pytest.mark.parametrize("argv", [
    ("chart", "loss", "--all", "-o", "x.jpg"),
    ("chart", "memory", "1", "-o", "x.gif"),
    ("compare", "--all", "--chart", "x.bmp"),
    ("chart", "memory", *[str(i) for i in range(1, 10)]),
])
def test_cli_chart_bad_input_is_one_line_exit_2(cli, seeded: dict[str, int], argv: tuple[str, ...],
                                                 tmp_path: Path) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_only_the_chart_modules_import_matplotlib() -> None:
    importers = []
    for path in sorted((ROOT / "core").rglob("*.py")) + sorted((ROOT / "tui").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "matplotlib" or n.startswith("matplotlib.") for n in names):
                importers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(importers)) == ["core/export/charts_mpl.py", "core/export/fonts.py"]
    code = ("import contextlib, io\nfrom zerodeck.core.cli import main\n"
            "for argv in (['--help'], ['chart', '--help'], ['chart', 'loss', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n")
    assert heavy_modules_loaded(code, also=("matplotlib",)) == []


def test_many_runs_get_a_legend_beside_the_axes_with_every_run() -> None:
    """Above LEGEND_INSIDE entries the legend stands beside the axes in balanced columns (drawn as
    plain artists): every run's label is there as text, each with a sample of its own line, and
    the figure widens by the columns' width, more for long CJK names."""
    def curves(label: str, n: int) -> list[Curve]:
        return [Curve(f"#{r} {label}-{r}", [(float(s), 2.0 - s / (900 + r)) for s in range(1, 201)])
                for r in range(1, n + 1)]

    svg = _render(lambda t, f: charts.curves_chart(curves("qwen", 40), t, f, title="Loss", ylabel="loss"), "svg")
    root = ET.fromstring(svg)
    texts = [t for el in root.iter(f"{SVG_NS}text") for t in el.itertext()]
    assert all(f"#{r} qwen-{r}" in texts for r in range(1, 41))
    # 40 curves and 40 samples beside them, each sample a short line (its path is a few points long).
    lines = [g for g in root.iter(f"{SVG_NS}g") if (g.get("id") or "").startswith("line2d")]
    assert len(lines) >= 80
    png = _render(lambda t, f: charts.curves_chart(curves("qwen", 40), t, f, title="Loss", ylabel="loss"), "png")
    wide = _render(lambda t, f: charts.curves_chart(curves(CJK_NAME, 40), t, f, title="Loss", ylabel="loss"), "png")
    assert 1080 < _png_stats(png)["size"][0] < _png_stats(wide)["size"][0]
    from matplotlib.image import imread

    img = imread(io.BytesIO(png), format="png")[..., :3].mean(axis=2)
    # Right of the axes (their right spine stands SIZE[0] - 0.25 in from the left) and inside the
    # frame's edges, every row of 20 entries at 18.5 px carries ink: a sample and a label.
    legend = img[60:420, int((charts.SIZE[0] - 0.1) * charts.DPI):-20]
    assert (legend < 0.5).any(axis=1).reshape(-1, 20).any(axis=1).all()


def test_runs_with_evaluations_beside_the_axes_are_one_entry_each() -> None:
    """Beside the axes a run with evaluations is one entry, its train sample and its eval sample side
    by side, under a `train`/`eval` key; a few runs keep matplotlib's legend with an entry per line."""
    def curves(n: int) -> list[Curve]:
        return [Curve(f"#{r} qwen-{r}", [(float(s), 2.0 - s / (900 + r)) for s in range(1, 201)],
                      [(float(s), 1.9 - s / (900 + r)) for s in range(50, 201, 50)]) for r in range(1, n + 1)]

    def texts(svg: bytes) -> list[str]:
        return [t for el in ET.fromstring(svg).iter(f"{SVG_NS}text") for t in el.itertext()]

    many = texts(_render(lambda t, f: charts.curves_chart(curves(30), t, f, title="Loss", ylabel="loss"), "svg"))
    assert all(many.count(f"#{r} qwen-{r}") == 1 for r in range(1, 31))
    assert many.count("train") == 1 and many.count("eval") == 1
    assert not any(x.endswith((" train", " eval")) for x in many)
    # Seven runs: 14 lines, beside the axes as 7 entries and the key, in a figure widened for them.
    seven = _render(lambda t, f: charts.curves_chart(curves(7), t, f, title="Loss", ylabel="loss"), "png")
    assert _png_stats(seven)["size"][0] > 1080
    few = texts(_render(lambda t, f: charts.curves_chart(curves(3), t, f, title="Loss", ylabel="loss"), "svg"))
    assert "#1 qwen-1 train" in few and "#3 qwen-3 eval" in few and "train" not in few


def test_the_quick_import_keeps_artists_whole() -> None:
    """charts_mpl skips building set() docstrings while it imports matplotlib: every artist must still
    take any property through set(), and a class made after the import gets its docstring again."""
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

    line = Line2D([0, 1], [0, 1])
    line.set(lw=3, color="red", marker="o")  # an alias, a colour, a marker
    assert line.get_linewidth() == 3 and line.get_marker() == "o"
    with pytest.raises(AttributeError, match="unexpected keyword argument 'no_such_property'"):
        Text().set(no_such_property=1)

    class Later(Artist):
        def set_thing(self, value: float) -> None:
            """Set the thing."""

    assert "thing" in (Later.set.__doc__ or "")


def test_pdf_charts_load_the_font_subsetter_only_for_type42(tmp_path: Path) -> None:
    """The subsetter the PDF backend imports is deferred: a chart (Type 3 fonts) never runs it, and a
    Type 42 PDF, which needs it, still gets it whole."""
    code = f"""
import sys
from matplotlib import rc_context
from zerodeck.core.export.charts import curves_chart
from zerodeck.core.export.chart_data import Curve
curve = [Curve("#1 {CJK_NAME}", [(1.0, 2.0), (2.0, 1.5), (3.0, 1.2)])]
curves_chart(curve, {str(tmp_path / "a.pdf")!r}, "pdf", title="Loss", ylabel="loss")
sub = sys.modules["fontTools.subset"]
print(type(sub).__name__)  # type() reads no attribute: a lazy module's class changes once it loads
from matplotlib.figure import Figure
fig = Figure()
fig.text(0.5, 0.5, "Type 42")
with rc_context({{"pdf.fonttype": 42}}):
    fig.savefig({str(tmp_path / "b.pdf")!r})
print(type(sub).__name__, hasattr(sub, "Subsetter"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["_LazyModule", "module", "True"]
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF") and b"/Type3" in (tmp_path / "a.pdf").read_bytes()
    assert b"/FontFile2" in (tmp_path / "b.pdf").read_bytes()  # the Type 42 font, subset and embedded
