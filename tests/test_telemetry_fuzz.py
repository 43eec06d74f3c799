"""No parser raises, whatever it is fed: mutated real tables, random text, random bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zerodeck.core.telemetry import npusmi_parse as nps
from zerodeck.core.telemetry import nvidia_parse as nv

from .conftest import FIXTURES

TABLES = [p.read_text() for p in sorted((FIXTURES / "npu-smi").glob("*.txt"))] + \
         [p.read_text() for p in sorted((FIXTURES / "npu-smi-errors").glob("*.txt"))] + \
         [p.read_text() for p in sorted((FIXTURES / "gpu").glob("nvidia-smi_*"))]


def every_parser(text: str) -> None:
    t = nps.parse_info(text)
    assert t.cards or t.error
    nps.parse_kv_blocks(text)
    nps.kv_card(text)
    nps.parse_map(text)
    nps.parse_list(text)
    nps.dcmi_error(text)
    nv.parse_any(text)
    nv.parse_plain(text)
    nv.parse_xml(text)
    nv.parse_csv(text)
    nv.parse_apps_csv(text, {})


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TABLES))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "cut", "dup", "junk", "swap_pipe", "na"]))
        if op == "drop":
            del lines[i]
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]))))]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "junk":
            lines[i] = draw(st.text(max_size=60))
        elif op == "swap_pipe":
            lines[i] = lines[i].replace("|", draw(st.sampled_from(["", "||", "/", " "])), 1)
        else:
            lines[i] = lines[i].replace("0", draw(st.sampled_from(["NA", "-", "", "/", "x"])))
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_tables_never_raise(text: str) -> None:
    every_parser(text)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    every_parser(text)


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_random_bytes_never_raise(data: bytes) -> None:
    every_parser(data.decode("utf-8", "replace"))
