"""Store URLs as people may see them: the password masked, a server named HOST/DB.

Kept free of SQLAlchemy so that whatever shows a URL or an environment (errors, `store info`, the
run record's environment, `run --dry-run`) can mask it without loading the ORM.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def mask_url(url: Any) -> str:
    """The URL as written, with its password (in the user part or a `password=` parameter) as ***."""
    render = getattr(url, "render_as_string", None)  # a SQLAlchemy URL
    text_url = render(hide_password=False) if render else str(url)
    masked = re.sub(r"([?&]password=)[^&]*", r"\1***", text_url)
    scheme, sep, rest = masked.partition("://")
    if not sep:
        return masked
    # The user part ends at the last @ before the path: a password may itself hold an unencoded @.
    cut = len(rest)
    for mark in ("/", "?"):
        at = rest.find(mark, rest.rfind("@") + 1 if "@" in rest else 0)
        cut = min(cut, at) if at >= 0 else cut
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            authority = userinfo.split(":", 1)[0] + ":***@" + host
    return f"{scheme}://{authority}{tail}"


def server_name(url: Any) -> str:
    """HOST[:PORT]/DB of a server URL (a Unix-socket host, `?host=/dir`, is its directory)."""
    render = getattr(url, "render_as_string", None)
    text_url = render(hide_password=False) if render else str(url)
    try:
        parts = urlsplit(text_url)
        port = parts.port
    except ValueError:
        return mask_url(text_url).split("@")[-1]
    host = parts.hostname or (parse_qs(parts.query).get("host") or ["localhost"])[0]
    shown = f"{host}:{port}" if port else host
    return f"{shown}/{unquote(parts.path.lstrip('/'))}"


def mask_text(text: str) -> str:
    """Every URL password inside a longer text (an environment value, a command line) as ***."""
    return _IN_TEXT.sub(lambda m: mask_url(m.group(0)), text) if "://" in text else text


_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
