"""`zerodeck data inspect` and `inspect_data` on real small JSON / JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from zerodeck.core.errors import BadInput
from zerodeck.core.plan.data import inspect_data, recommended_samples
from zerodeck.core.plan.registry import lookup

ROOT = Path(__file__).resolve().parent.parent


def _jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_alpaca_jsonl_duplicates_after_whitespace_and_case(tmp_path: Path) -> None:
    recs = [
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"instruction": "add  2 and 3.", "input": "", "output": " 5 "},  # same after normalising
        {"instruction": "ADD 2 AND 3.", "input": "", "output": "5"},  # same again
        {"instruction": "Add 2 and 4.", "input": "", "output": "6"},
    ]
    rep = inspect_data(_jsonl(tmp_path / "a.jsonl", recs))
    assert (rep.samples, rep.duplicates, rep.shape, rep.format) == (4, 2, "alpaca", "jsonl")
    assert rep.duplicate_ratio == 0.5


def test_sharegpt_json_array_streamed(tmp_path: Path) -> None:
    recs = [{"conversations": [{"from": "human", "value": "hi " * i}, {"from": "gpt", "value": "ok"}]}
            for i in range(1, 301)]
    p = tmp_path / "s.json"
    p.write_text(json.dumps(recs, indent=2), encoding="utf-8")
    rep = inspect_data(p)
    assert rep.samples == 300 and rep.shape == "sharegpt" and rep.format == "json" and rep.duplicates == 0
    assert rep.lengths["max"] == len("hi " * 300) + 1 + 2
    assert rep.lengths["p50"] < rep.lengths["p95"] < rep.lengths["max"]


def test_json_array_larger_than_the_read_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodeck.core.plan import data

    monkeypatch.setattr(data, "CHUNK", 64)  # records straddle every chunk boundary
    recs = [{"messages": [{"role": "user", "content": f"question {i} " + "x" * (i % 97)},
                          {"role": "assistant", "content": str(1234567 * i)}]} for i in range(500)]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(recs), encoding="utf-8")
    rep = inspect_data(p)
    assert rep.samples == 500 and rep.duplicates == 0 and not rep.bad_lines


def test_bad_lines_are_numbered_and_the_rest_counted(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(10)]
    lines[3] = '{"instruction": "broken",'
    lines[7] = "not json at all"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = inspect_data(p)
    assert rep.samples == 8 and rep.bad_lines == [4, 8] and rep.bad_message and "line 4, 8" in rep.bad_message


def test_recommended_sizes_interpolate_by_parameter_count() -> None:
    assert recommended_samples(lookup("Qwen2.5-7B").params()) == 20_000
    assert recommended_samples(lookup("Qwen2.5-14B").params()) == 40_000
    assert recommended_samples(lookup("Qwen2.5-32B").params()) == 80_000
    assert recommended_samples(lookup("Qwen2.5-72B").params()) == 150_000
    mid = recommended_samples(lookup("Qwen3-8B").params())
    assert 20_000 < mid < 40_000


def test_verdicts_too_few_and_saturates(tmp_path: Path) -> None:
    few = inspect_data(_jsonl(tmp_path / "f.jsonl", [{"instruction": str(i), "output": "x"} for i in range(50)]),
                       model="Qwen2.5-72B")
    assert few.verdict == "too_few" and few.recommended_samples == 150_000 and "far below" in (few.advice or "")
    many = inspect_data(_jsonl(tmp_path / "m.jsonl", [{"instruction": str(i), "output": "x"} for i in range(5000)]),
                        model="zerodeck-tiny")
    assert many.verdict == "saturates" and "saturates" in (many.advice or "")


def test_not_json_is_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    p.write_text("instruction,output\nhi,there\n", encoding="utf-8")
    with pytest.raises(BadInput, match="not a JSON or JSONL file"):
        inspect_data(p)


def test_recorded_throughput_gives_an_epoch_estimate(cli, zd_home: Path, tmp_path: Path) -> None:
    from zerodeck.store.api import Store

    store = Store.from_environment()
    store.save_snapshot(hash="h", name="r", toml='name = "r"\n[model]\nname = "Qwen2.5-7B"\n', source_path=None)
    store.add_run(name="r", recipe_hash="h", status="finished", outcome="succeeded", samples_per_s=4.0,
                  model="Qwen2.5-7B")
    data = _jsonl(tmp_path / "t.jsonl", [{"instruction": str(i), "output": "y"} for i in range(100)])
    rep = inspect_data(data, model="Qwen2.5-7B", store=store)
    assert rep.samples_per_s == 4.0 and rep.est_epoch_s == 25.0
    assert inspect_data(data, model="Qwen2.5-7B").samples_per_s is None  # no store: no estimate
    code, out, _ = cli("data", "inspect", str(data), "--model", "qwen2.5-7b", "--json")
    assert code == 0 and json.loads(out)["est_epoch_s"] == 25.0


# -- the command line ---------------------------------------------------------------------------

def test_cli_contract_shape(cli) -> None:
    code, out, _ = cli("data", "inspect", str(ROOT / "recipes" / "data" / "demo-alpaca.jsonl"),
                       "--model", "Qwen2.5-7B", "--json")
    assert code == 0
    d = json.loads(out)
    assert {"samples", "duplicates", "duplicate_ratio", "recommended_samples", "verdict", "length"} <= set(d)
    assert set(d["length"]) == {"p50", "p95", "max"}
    assert d["samples"] == 200 and d["recommended_samples"] == 20_000 and d["verdict"] == "too_few"


def test_cli_text_output(cli) -> None:
    code, out, _ = cli("data", "inspect", str(ROOT / "recipes" / "data" / "demo-alpaca.jsonl"))
    assert code == 0 and "samples" in out and "p95" in out


def test_cli_bad_line_exit_2_with_counts(cli, tmp_path: Path) -> None:
    p = tmp_path / "b.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{oops\n{"instruction": "c", "output": "d"}\n')
    code, out, err = cli("data", "inspect", str(p), "--json")
    assert code == 2 and json.loads(out)["samples"] == 2 and "line 2" in err and "Traceback" not in err


@pytest.mark.parametrize("content,needle", [
    ("hello world\n", "not a JSON or JSONL file"),
    ("{not json\n{also not\n", "not JSON"),
    ('{\n  "data": [1, 2]\n}\n', "one JSON object, not a list of samples"),
])
def test_cli_not_json_exit_2(cli, tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(content)
    code, _, err = cli("data", "inspect", str(p))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_cli_missing_file_and_unknown_model(cli, tmp_path: Path) -> None:
    code, _, err = cli("data", "inspect", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "no such data file" in err
    p = _jsonl(tmp_path / "ok.jsonl", [{"instruction": "a", "output": "b"}])
    code, _, err = cli("data", "inspect", str(p), "--model", "Qwen2.5-7C")
    assert code == 2 and "did you mean" in err


def test_json_array_edge_cases(tmp_path: Path) -> None:
    empty = tmp_path / "e.json"
    empty.write_text("[ ]\n")
    assert inspect_data(empty).samples == 0
    tricky = tmp_path / "t.json"
    tricky.write_text('[{"instruction": "a ] , [ b", "output": "\\u00e9 \\"q\\""},\n 7,\n "plain text"]')
    rep = inspect_data(tricky)
    assert rep.samples == 3 and rep.shape == "mixed" and not rep.bad_lines


def test_broken_array_element_reports_its_line(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": oops},\n{"instruction": "c"}\n]\n')
    rep = inspect_data(p)
    assert rep.samples == 1 and rep.bad_lines == [3] and rep.bad_message and "line 3" in rep.bad_message
