"""The message catalog, with the standard library only: `extract` brings locale/zh_CN's .po up to date
with the messages in the code (new ones get an empty translation, gone ones are dropped), `compile`
writes the .mo that gettext reads (the logic of CPython's Tools/i18n/msgfmt.py). The .mo is committed,
so an install needs no build step; tests/test_i18n.py fails when it is stale or a message lacks its
translation.

Usage: .venv/bin/python scripts/i18n.py extract|compile|check
"""

from __future__ import annotations

import ast
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("core", "tui")
PO = ROOT / "core" / "locale" / "zh_CN" / "LC_MESSAGES" / "zerodeck.po"
MO = PO.with_suffix(".mo")
HEADER = ("Project-Id-Version: zerodeck\nLanguage: zh_CN\nMIME-Version: 1.0\n"
          "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
          "Plural-Forms: nplurals=1; plural=0;\n")
# argparse words these itself (through gettext's global domain, pointed at our catalog by the CLI's
# entry when the language is not English): the ones a user of `zerodeck` meets.
ARGPARSE = ("usage: ", "positional arguments", "options", "show this help message and exit",
            "the following arguments are required: %s", "unrecognized arguments: %s",
            "invalid choice: %(value)r (choose from %(choices)s)", "argument %(argument_name)s: %(message)s",
            "expected one argument", "invalid %(type)s value: %(value)r", "ambiguous option: %(option)s could match "
            "%(matches)s", "not allowed with argument %s", "expected at least one argument",
            "one of the arguments %s is required")

Key = tuple[str, str | None]  # (msgid, msgid_plural)


def code_messages(roots: Iterable[Path] = tuple(ROOT / s for s in SOURCES)) -> dict[Key, list[str]]:
    """Every `_("...")`, `N_("...")` and `ngettext("...", "...", n)` in the code, with where it is."""
    found: dict[Key, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                    continue
                args = node.args
                strs = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                where = f"{path.relative_to(ROOT).as_posix()}:{node.lineno}"
                if node.func.id in ("_", "N_") and len(args) == 1 and strs:
                    found.setdefault((strs[0], None), []).append(where)
                elif node.func.id == "ngettext" and len(strs) >= 2:
                    found.setdefault((strs[0], strs[1]), []).append(where)
    for msg in ARGPARSE:
        found.setdefault((msg, None), []).append("argparse")
    return found


def _unquote(text: str) -> str:
    return ast.literal_eval(text)


def read_po(path: Path = PO) -> dict[Key, list[str]]:
    """{(msgid, plural): [msgstr, ...]} of a .po file (the header entry left out)."""
    entries: dict[Key, list[str]] = {}
    cur: dict[str, str] = {}
    field = ""

    def flush() -> None:
        if "msgid" in cur and cur["msgid"]:
            strs = [cur[k] for k in sorted(cur) if k.startswith("msgstr")]
            entries[(cur["msgid"], cur.get("msgid_plural"))] = strs
        cur.clear()

    if not path.exists():
        return entries
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            if not line and cur:
                flush()
            continue
        if line.startswith('"'):
            cur[field] += _unquote(line)
            continue
        key, _sep, value = line.partition(" ")
        if key == "msgid" and "msgstr" in "".join(cur):
            flush()
        field = key
        cur[field] = _unquote(value)
    flush()
    return entries


def _quote(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
    return f'"{out}"'


def write_po(entries: dict[Key, list[str]], where: dict[Key, list[str]], path: Path = PO) -> None:
    lines = ["# Simplified Chinese messages of zerodeck. Edit msgstr only; run scripts/i18n.py extract",
             "# after changing messages in the code and scripts/i18n.py compile after editing here.",
             'msgid ""', 'msgstr ""', *(_quote(h + "\n") for h in HEADER.splitlines()), ""]
    for key in sorted(entries, key=lambda k: (where.get(k, ["~"])[0], k[0])):
        msgid, plural = key
        lines.append("#: " + " ".join(where.get(key, [])[:3]))
        if any(c in msgid for c in "{%"):
            lines.append("#, python-format" if "%" in msgid and "{" not in msgid else "#, python-brace-format")
        lines.append("msgid " + _quote(msgid))
        strs = entries[key]
        if plural is None:
            lines.append("msgstr " + _quote(strs[0] if strs else ""))
        else:
            lines.append("msgid_plural " + _quote(plural))
            lines.append("msgstr[0] " + _quote(strs[0] if strs else ""))
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def compile_mo(entries: dict[Key, list[str]]) -> bytes:
    """The GNU .mo bytes of the translated entries (msgfmt's layout: sorted keys, then values)."""
    pairs: dict[bytes, bytes] = {b"": HEADER.encode("utf-8")}
    for (msgid, plural), strs in entries.items():
        if not strs or not all(strs):
            continue
        key = msgid if plural is None else msgid + "\0" + plural
        pairs[key.encode("utf-8")] = "\0".join(strs).encode("utf-8")
    keys = sorted(pairs)
    ids = strs_b = b""
    offsets = []
    for k in keys:
        offsets.append((len(ids), len(k), len(strs_b), len(pairs[k])))
        ids += k + b"\0"
        strs_b += pairs[k] + b"\0"
    keystart = 7 * 4 + 16 * len(keys)
    valuestart = keystart + len(ids)
    koffsets: list[int] = []
    voffsets: list[int] = []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + keystart]
        voffsets += [l2, o2 + valuestart]
    out = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0)
    out += struct.pack(f"{len(koffsets)}i", *koffsets) + struct.pack(f"{len(voffsets)}i", *voffsets)
    return out + ids + strs_b


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    where = code_messages()
    po = read_po()
    if cmd == "extract":
        write_po({k: po.get(k, []) for k in where}, where)
        missing = [k[0] for k in where if not any(po.get(k, []))]
        print(f"{PO.relative_to(ROOT)}: {len(where)} messages, {len(missing)} without a translation")
        return 0
    if cmd == "compile":
        MO.write_bytes(compile_mo(po))
        print(f"wrote {MO.relative_to(ROOT)}")
        return 0
    missing = [k[0] for k in where if not any(po.get(k, []))]
    stale = MO.exists() and MO.read_bytes() != compile_mo(po)
    for m in missing:
        print(f"no translation: {m!r}")
    if stale or not MO.exists():
        print(f"{MO.relative_to(ROOT)} is stale: run scripts/i18n.py compile")
    return 1 if missing or stale or not MO.exists() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
