"""Command-palette entries (Ctrl+P): every action of the TUI by name, and every voice by its label."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider
from textual.content import Content

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

    # A hit's display and help are markup to Textual; a label is text ("Miku [JP] [/v2]" crashed the palette, and
    # "[x]" vanished from a name): the display is plain Content with the match laid on it, the help escaped
    async def discover(self) -> Hits:
        for text, help_, run in self._entries():
            yield Hit(1.0, Content(text), run, text=text, help=literal(help_))  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_, run in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, highlighted(matcher, text), run, text=text, help=literal(help_))  # type: ignore[arg-type]


def literal(text: str) -> str:
    """`text` as Textual markup that shows it as it is (every "[" escaped; a backslash stays a backslash)."""
    return text.replace("[", "\\[")


def highlighted(matcher, text: str) -> Content:
    """`text` as plain Content with the characters the query matched in the matcher's style (as its highlight()
    does, but that one reads the text as markup)."""
    content = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for i in offsets:
        if not text[i].isspace():
            content = content.stylize(matcher.match_style, i, i + 1)
    return content
