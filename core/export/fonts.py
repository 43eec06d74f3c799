"""A CJK font for charts: recipe names and (in Chinese) every label can be Chinese, and matplotlib's
default DejaVu Sans has no Han glyphs. We look for a CJK family among the fonts matplotlib already
found on the machine and put it after DejaVu Sans, so Latin text keeps its look and each missing glyph
falls back to the CJK font. Without one the text is still drawn (as missing-glyph boxes in PNG and
PDF; SVG keeps text as text for the viewer's fonts) and the user is told once how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from zerodeck.core.i18n import _

# Preference order: Simplified Chinese faces first, then other CJK faces that still cover the Han
# characters of a Chinese label (the glyph shapes differ a little, the text reads the same).
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "SimHei", "Noto Serif CJK SC",
    "Source Han Serif SC", "AR PL UMing CN", "AR PL UKai CN", "Noto Sans CJK TC", "Noto Sans CJK JP",
    "Noto Sans CJK KR", "Source Han Sans", "Droid Sans Fallback",
)
BASE_FAMILY = "DejaVu Sans"

_warned = False


def has_cjk(text: str) -> bool:
    """Whether `text` holds a character from the CJK blocks (Han, kana, Hangul, fullwidth forms)."""
    return any("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
               or "\uff00" <= ch <= "\uffef" or ord(ch) >= 0x20000 for ch in text)


def pick_cjk_family(available: Iterable[str]) -> str | None:
    """The preferred CJK family among the family names given, or None."""
    names = set(available)
    return next((f for f in CJK_FAMILIES if f in names), None)


def machine_cjk_family() -> str | None:
    """The CJK family matplotlib's font list (its cache of the machine's fonts) holds, if any."""
    from matplotlib import font_manager

    return pick_cjk_family(entry.name for entry in font_manager.fontManager.ttflist)


def font_families(texts: Iterable[str], *, fmt: str, cjk_family: str | None,
                  warn: Callable[[str], None] | None = None) -> list[str]:
    """The family list for a chart whose texts are `texts`: DejaVu Sans, then `cjk_family` (the
    machine's, `machine_cjk_family()`) when some text is CJK. Only then: a fallback font in the list
    is loaded for every text drawn, a third more time for a chart with none. Warns once per process
    when CJK text will be drawn without one (PNG, PDF)."""
    global _warned
    if not any(has_cjk(t) for t in texts):
        return [BASE_FAMILY]
    if cjk_family:
        return [BASE_FAMILY, cjk_family]
    if fmt != "svg" and warn is not None and not _warned:
        _warned = True
        warn(_("no CJK font found for the chart's Chinese/Japanese/Korean text, drawn as boxes; install one "
               "(apt install fonts-noto-cjk or fonts-wqy-microhei, then delete ~/.cache/matplotlib)"))
    return [BASE_FAMILY]
