"""Command-palette entries (Ctrl+P): every action of the TUI by name, and every voice by its label."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider

from rtvc.tui.keys import shown

if TYPE_CHECKING:
    from rtvc.tui.app import RtvcApp


class RtvcCommands(Provider):
    def _entries(self) -> list[tuple[str, str, object]]:
        app: RtvcApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, str, object]] = []
        for key, action, text in app.ACTIONS:
            out.append((text, f"key: {shown(key)}", partial(app.run_action, action)))
        for v in app.voices:
            label = v.get("label") or v["name"]
            out.append((f"Voice: {label}", f"select profile '{v['name']}'", partial(app.select_voice, v["name"])))
        return out

    async def discover(self) -> Hits:
        for text, help_, run in self._entries():
            yield Hit(1.0, text, run, help=help_)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_, run in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, help=help_)  # type: ignore[arg-type]
