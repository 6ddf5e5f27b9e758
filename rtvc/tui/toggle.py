"""An on/off switch on one line, `[M] mute  ON`: a key, a name and the state, clickable.

Textual's Switch is three rows high with its border; a row of these fits an 80-column terminal. Clicking
(or Enter while focused) runs the app action named in `action`; the state shown is the daemon's. Focused, it is
underlined: a background a shade lighter was all, unseen on most terminals and none at all on 8-colour ones
(TERM=screen) or under NO_COLOR (a review: Enter then switched what nobody could see was focused).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widget import Widget


class Toggle(Widget, can_focus=True):
    DEFAULT_CSS = """
    Toggle { height: 1; width: auto; margin-right: 1; }
    Toggle:focus { background: $boost; text-style: underline; }
    """
    # Enter only: space is the talk key everywhere (a focused switch took it, and push-to-talk muted instead)
    BINDINGS: ClassVar[list[Binding]] = [Binding("enter", "press", show=False)]

    def __init__(self, key: str, label: str, action: str, id: str | None = None, on_word: str = "ON"):
        super().__init__(id=id)
        self.key = key
        self.label = label
        self.action = action
        self.on_word = on_word
        self.on = False
        self.known = False  # nothing from the daemon yet

    def set(self, on: bool) -> None:
        self.on, self.known = bool(on), True
        self.refresh(layout=True)

    async def action_press(self) -> None:
        await self.app.run_action(self.action)  # (a coroutine: not awaited, a click did nothing)

    async def on_click(self, event: events.Click) -> None:
        event.stop()
        await self.app.run_action(self.action)

    def render(self) -> Text:
        t = Text.assemble((self.key, "bold cyan"), " ", self.label, " ")
        if not self.known:
            t.append("?", style="dim")
        elif self.on:
            t.append(self.on_word, style="bold reverse green" if self.on_word == "ON" else "bold reverse yellow")
        else:
            t.append("off", style="dim")
        return t
