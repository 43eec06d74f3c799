"""Where alerts go and on what: `$ZERODECK_HOME/config.toml` `[alerts]`, a recipe's `[alerts]` over it.

    [alerts]
    urls = ["lark://TOKEN", "mailto://user:pass@example.com", "json://127.0.0.1:8080/hook"]
    on = ["finished", "stalled", "lost"]

The URLs are Apprise URLs and usually hold a secret (a webhook token, a password), so they are shown
only through `mask_url`: the scheme and a host name survive, everything else becomes `***`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from zerodeck.core.errors import BadInput
from zerodeck.core.recipe.model import Recipe

KINDS = ("finished", "stalled", "lost")
_HOST = re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|([A-Za-z0-9-]+\.)+[A-Za-z]{2,})(:\d+)?$")


@dataclass(frozen=True)
class AlertConfig:
    urls: tuple[str, ...] = ()
    on: tuple[str, ...] = KINDS

    def wants(self, kind: str) -> bool:
        return bool(self.urls) and kind in self.on


def load_config(path: Path) -> AlertConfig:
    """The `[alerts]` table of config.toml (no file or no table: no targets). Bad input is one line
    naming the file and the field (BadInput, exit 2)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AlertConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: {exc}") from None
    table = data.get("alerts", {})
    if not isinstance(table, dict):
        raise BadInput(f"{path}: alerts: a table expected")
    unknown = sorted(set(table) - {"urls", "on"})
    if unknown:
        raise BadInput(f"{path}: alerts: unknown key(s) {', '.join(unknown)} (known: urls, on)")
    urls = _strings(path, "alerts.urls", table.get("urls", []))
    on = _strings(path, "alerts.on", table.get("on", list(KINDS)))
    bad = [k for k in on if k not in KINDS]
    if bad:
        raise BadInput(f"{path}: alerts.on: {bad[0]!r} is not one of {', '.join(KINDS)}")
    for url in urls:
        if "://" not in url:
            raise BadInput(f"{path}: alerts.urls: {mask_url(url)!r} is not a URL (scheme://...)")
    return AlertConfig(tuple(urls), tuple(on))


def _strings(path: Path, field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f"{path}: {field}: a list of non-empty strings expected")
    return list(value)


def for_recipe(base: AlertConfig, recipe: Recipe) -> AlertConfig:
    """A recipe's `[alerts]` keys replace the config file's."""
    own = recipe.alerts
    return AlertConfig(tuple(own.urls) if own.urls is not None else base.urls,
                       tuple(own.on) if own.on is not None else base.on)


def mask_url(url: str) -> str:
    """`json://127.0.0.1:8080/***`, `mailto://example.com/***`, `lark://***`: a target named without
    its secret (user info, tokens in the host or path, query values)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    head, _, tail = rest.partition("/")
    head = head.split("?", 1)[0]
    host = head.rsplit("@", 1)[-1]
    shown = host if _HOST.match(host) else "***"
    more = "/***" if tail or "?" in rest or "@" in head else ""
    return f"{scheme}://{shown}{more}"


def alert_kind(outcome: str | None) -> str:
    """What a finished run's alert is about: `lost` is its own kind, every other outcome `finished`."""
    return "lost" if outcome == "lost" else "finished"
