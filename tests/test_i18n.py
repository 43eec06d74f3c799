"""The Chinese interface: every message in the code has a translation, the compiled catalog is the one
the .po gives, placeholders survive translation, the language comes from the environment once at the
entry, `--json` output is the same in both languages, and the TUI in Chinese fits 80 x 24 (CJK
characters are two cells wide: no row overflows, no label is cut).

After changing messages: `.venv/bin/python scripts/i18n.py extract`, translate the new msgstr lines in
core/locale/zh_CN/LC_MESSAGES/zerodeck.po, then `scripts/i18n.py compile`. Update the Chinese TUI picture
after an intended change with ZERODECK_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import ast
import gettext
import importlib.util
import os
import re
import string
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from zerodeck.core.i18n import catalog_path, language_from_env

from .conftest import FIXTURES, ROOT

ZH_TUI = FIXTURES / "tui" / "zh_80x24.txt"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zerodeck_i18n_tool", ROOT / "scripts" / "i18n.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


i18n = _tool()


def _zd(*argv: str, lang: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES", "ZERODECK_LANG")}
    env.update(lang, ZERODECK_HOME=str(home))
    return subprocess.run([str(Path(sys.executable).with_name("zerodeck")), *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def test_every_message_in_the_code_has_a_chinese_translation() -> None:
    code = i18n.code_messages()
    po = i18n.read_po()
    missing = [f"{where[0]}: {key[0]!r}" for key, where in code.items() if not any(po.get(key, []))]
    assert not missing, "no Chinese translation (scripts/i18n.py extract, then translate):\n" + "\n".join(missing)
    obsolete = sorted(k[0] for k in po if k not in code)
    assert not obsolete, f"in the catalog but no longer in the code (scripts/i18n.py extract): {obsolete}"


def test_the_extractor_sees_what_it_must() -> None:
    """The completeness test is only as good as the scan: it finds _(), N_() and ngettext() calls."""
    msgs = i18n.code_messages()
    assert ("Quit", None) in msgs  # a Binding description in tui/app.py
    assert ("Catalog", None) in msgs  # N_() in tui/widgets/modebar.py
    assert ("{n} row", "{n} rows") in msgs  # ngettext in core/cli/compare_cmd.py
    assert ("usage: ", None) in msgs  # argparse's own words


def _fields(text: str) -> list[str]:
    brace = sorted(f"{{{name}}}" for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None)
    percent = sorted(re.findall(r"%(?:\(\w+\))?[sdr]", text))
    return brace + percent


def test_translations_keep_every_placeholder() -> None:
    bad = []
    for (msgid, plural), strs in i18n.read_po().items():
        for s in strs:
            if _fields(s) != _fields(msgid if plural is None else plural):
                bad.append(f"{msgid!r} -> {s!r}")
    assert not bad, "\n".join(bad)


def test_the_compiled_catalog_is_up_to_date_and_loads() -> None:
    mo = catalog_path("zh")
    assert mo.read_bytes() == i18n.compile_mo(i18n.read_po()), "stale .mo: run scripts/i18n.py compile"
    with open(mo, "rb") as f:
        t = gettext.GNUTranslations(f)
    assert t.gettext("Quit") == "退出"
    assert t.ngettext("{n} row", "{n} rows", 3) == "{n} 行"
    assert t.gettext("not a message") == "not a message"


def test_the_catalog_ships_in_the_package() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "locale/*/LC_MESSAGES/*.mo" in data["zerodeck.core"]


@pytest.mark.parametrize("env, lang", [
    ({}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.utf8"}, "zh"),
    ({"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins, as in POSIX
    ({"LANG": "zh_TW.UTF-8"}, "en"),  # Traditional: English rather than the wrong script
    ({"LANG": "zh_CN.UTF-8", "ZERODECK_LANG": "en"}, "en"),
    ({"LANG": "C", "ZERODECK_LANG": "zh"}, "zh"),
    ({"ZERODECK_LANG": "ZH_cn"}, "zh"),
])
def test_language_from_the_environment(env: dict[str, str], lang: str) -> None:
    assert language_from_env(env) == lang


def test_the_language_is_read_only_at_the_entry() -> None:
    """The CLI's main chooses; nothing below reads LANG or ZERODECK_LANG (ARCHITECTURE.md, "Languages").
    The chart painter is a process entry too: it takes the language its command chose, not the environment's."""
    callers = []
    for path in sorted((ROOT / "core").rglob("*.py")) + sorted((ROOT / "tui").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("language_from_env", "set_language"):
                callers.append(rel)
        if rel != "core/i18n.py":
            assert "ZERODECK_LANG" not in text and '"LANG"' not in text, rel
    assert sorted(set(callers)) == ["core/cli/__init__.py", "core/export/painter.py"]


def test_cli_speaks_chinese_and_keeps_its_contracts(tmp_path: Path) -> None:
    zh = _zd("--help", lang={"LANG": "zh_CN.UTF-8"}, home=tmp_path)
    assert zh.returncode == 0 and zh.stdout.startswith("用法：zerodeck") and "规划、启动、监控" in zh.stdout
    assert "显示此帮助信息后退出" in zh.stdout and "show this help" not in zh.stdout
    en = _zd("--help", lang={"LANG": "zh_CN.UTF-8", "ZERODECK_LANG": "en"}, home=tmp_path)
    assert en.stdout.startswith("usage: zerodeck") and "Plan, launch, watch" in en.stdout
    # Bad input: the same exit code and one line, in Chinese.
    bad = _zd("compare", "--all", "--pivot", "model", lang={"ZERODECK_LANG": "zh"}, home=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "zerodeck: --pivot：应为 行,列，例如 model,zero_stage（收到 'model'）\n"
    usage = _zd("chart", "memory", lang={"ZERODECK_LANG": "zh"}, home=tmp_path)
    assert usage.returncode == 2 and "缺少以下参数：RUN" in usage.stderr and "用法：" in usage.stderr
    # Machine output never changes with the language.
    for argv in (("recipes", "list", "--json"), ("plan", "--model", "Qwen2.5-7B", "--json")):
        a = _zd(*argv, lang={"ZERODECK_LANG": "zh"}, home=tmp_path)
        b = _zd(*argv, lang={"ZERODECK_LANG": "en"}, home=tmp_path)
        assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout.lstrip()[:1] in "[{"


def _screens(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("=== "):
            name = line[4:]
            out[name] = []
        else:
            out[name].append(line)
    return out


def test_tui_in_chinese_fits_80_by_24(tmp_path: Path) -> None:
    """The catalog, a plan, the launch dialog, the runs and live screens in Chinese, keys typed one at a
    time and then in a burst, in a child process that chooses the language at its entry as `zerodeck`
    does."""
    env = {**os.environ, "ZERODECK_LANG": "zh", "ZERODECK_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.tui_zh_snapshot"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    screens = _screens(proc.stdout)
    assert list(screens) == ["catalog", "plan", "launch dialog", "runs", "live", "catalog mode after a burst"]
    for name, rows in screens.items():
        assert len(rows) == 24, name
        for row in rows:
            cells, _sep, text = row.partition("|")
            assert int(cells) == 80, f"{name}: a row of {cells} cells: {text!r}"  # nothing overflows or wraps
            assert "\ufffd" not in text, f"{name}: a broken character in {text!r}"
    flat = {name: "\n".join(r.partition("|")[2] for r in rows) for name, rows in screens.items()}
    # Whole labels, not halves of a wide character.
    assert "1 配方库  2 实时  3 运行  4 对比" in flat["catalog"]
    assert "p 规划" in flat["catalog"] and "l 启动…" in flat["catalog"] and "q 退出" in flat["catalog"]
    assert "按 / 过滤" in flat["catalog"] and "3/3 放得下" in flat["catalog"]
    assert "规划 · demo-cpu-zero2" in flat["plan"] and "主机内存：" in flat["plan"] and "esc 返回" in flat["plan"]
    assert "启动 demo-cpu-zero2？" in flat["launch dialog"] and "Enter/y 启动   Esc/n 取消" in flat["launch dialog"]
    assert "CPU 上 2 个 rank" in flat["launch dialog"]
    assert "运行：0" in flat["runs"] and "o 打开" in flat["runs"]
    assert "未跟踪运行：从配方库（1）启动一个" in flat["live"] and "n 下一个运行" in flat["live"]
    assert flat["catalog mode after a burst"] == flat["plan"]
    assert "主机内存" in flat["live"]
    for english in ("Quit", "Filter", "Launch", "cancel", "host RAM"):
        assert english not in proc.stdout, english
    if os.environ.get("ZERODECK_UPDATE_GOLDEN"):
        ZH_TUI.write_text(proc.stdout, encoding="utf-8")
    assert proc.stdout == ZH_TUI.read_text(encoding="utf-8"), "the Chinese TUI changed: review, then update"


def test_charts_and_compare_in_chinese(zd_home: Path) -> None:
    """Chart labels follow the language; compare's JSON and CSV (machine formats) do not."""
    import xml.etree.ElementTree as ET

    from zerodeck.store.api import Store

    from .compare_seed import seed

    seed(Store.from_environment())
    zh = _zd("chart", "peaks", "--all", lang={"ZERODECK_LANG": "zh"}, home=zd_home)
    en = _zd("chart", "peaks", "--all", lang={"ZERODECK_LANG": "en"}, home=zd_home)
    assert zh.returncode == en.returncode == 0
    zh_text, en_text = ("".join(ET.fromstring(x.stdout).itertext()) for x in (zh, en))
    assert "每卡峰值显存与容量" in zh_text and "单卡容量" in zh_text and "Peak memory" not in zh_text
    assert "Peak memory per card vs capacity" in en_text and "#1 qwen2.5-7b-lora-z0" in zh_text
    for fmt in ("json", "csv"):
        a = _zd("compare", "--all", "--format", fmt, lang={"ZERODECK_LANG": "zh"}, home=zd_home)
        b = _zd("compare", "--all", "--format", fmt, lang={"ZERODECK_LANG": "en"}, home=zd_home)
        assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout
