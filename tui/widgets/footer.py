"""The key footer of every screen: Textual's `Footer`, rebuilt only when the keys it shows change.

Textual rebuilds its footer whenever a screen's bindings are refreshed, which happens each time a
screen is shown again: it unmounts and mounts a widget per key and styles each one, a fifth of a
number key's 100 ms (issue 12). The keys of a screen seldom change between two showings, so the
footer keeps its widgets while the shown keys (key, label, action, enabled) are the same.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    _shown: tuple[Any, ...] | None = None

    def _keys(self) -> tuple[Any, ...]:
        return tuple((b.key, b.key_display, b.description, b.action, enabled, tooltip)
                     for (_, b, enabled, tooltip) in self.screen.active_bindings.values() if b.show)

    def bindings_changed(self, screen: Screen[Any]) -> None:
        if self._shown is not None and self.is_attached and screen is self.screen and self._keys() == self._shown:
            return
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        # What this build shows; before the screen's bindings are known it builds nothing.
        self._shown = self._keys() if self._bindings_ready else None
        yield from super().compose()
