"""The interface language: English, or Simplified Chinese through the gettext catalog in `locale/`.

The language is chosen once, at the process entry (the CLI's `main`, which also opens the TUI), from
`language_from_env(os.environ)`, and set here with `set_language`; everything below only calls `_()`.
Messages are English msgids; data (run names, recipe keys, `--json` output) never passes through `_()`.
Strings fixed at import time (class attributes, constants) are marked with `N_()` and translated where
they are shown, or are built after the entry has chosen (the TUI's modules load after `run` sets it).
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "zerodeck"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("en", "zh")
# gettext's own locale name for each language that has a catalog.
CATALOGS = {"zh": "zh_CN"}
# Simplified Chinese locales; zh_TW / zh_HK (Traditional) stay English rather than get the wrong script.
_SIMPLIFIED = ("zh_cn", "zh_sg", "zh_hans", "zh-cn", "zh-sg", "zh-hans")

_active: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def language_from_env(env: Mapping[str, str]) -> str:
    """`ZERODECK_LANG` (zh / en) first, then the POSIX order LC_ALL, LC_MESSAGES, LANG."""
    own = env.get("ZERODECK_LANG", "").strip().lower()
    if own:
        return "zh" if own.startswith("zh") else "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "").strip().lower()
        if value:
            return "zh" if value == "zh" or value.startswith(_SIMPLIFIED) else "en"
    return "en"


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / CATALOGS[language] / "LC_MESSAGES" / f"{DOMAIN}.mo"


def set_language(language: str) -> None:
    """Make `_()` answer in `language` from now on; a missing catalog leaves English (never an error)."""
    global _active, _language
    if language not in CATALOGS:
        _active, _language = gettext.NullTranslations(), "en"
        return
    try:
        with open(catalog_path(language), "rb") as f:
            _active = gettext.GNUTranslations(f)
    except OSError:
        _active, _language = gettext.NullTranslations(), "en"
        return
    _language = language


def language() -> str:
    return _language


def _(message: str) -> str:
    """`message` in the chosen language (itself in English or when the catalog lacks it)."""
    return _active.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _active.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalog without translating it: for text fixed at import time."""
    return message
