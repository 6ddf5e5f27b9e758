"""The main screen's voice list: the profiles with a filter, the active one marked, Enter selects.

A mixin of RtvcApp (it uses the app's `voices`, `state`, `_call` and `show_message`): the list's widgets
live in the app's layout, its logic here. Textual registers `@on` handlers only on its own classes, so the
app routes the list's messages here (RtvcApp._filter and friends).
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual import work
from textual.content import Content
from textual.css.styles import RulesMap
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from rtvc.tui.client import CallError


class FilterInput(Input):
    """The voice list's filter: Enter hands the focus to the list, on its first match, at once (not at the next
    idle moment, and with the list filtered by what was typed, whose Changed messages may wait yet: a second Enter
    typed in the same burst, by a fast typist or a macro key, is the list's and selects that voice; it was lost,
    submitting the filter again)."""

    async def action_submit(self) -> None:
        voices = self.screen.query_one("#voices", OptionList)
        fill = getattr(self.app, "_fill_voice_list", None)
        if fill is not None:  # (the list as this filter has it: the keys typed into it may not be handled yet)
            fill()
        if voices.option_count:
            voices.highlighted = 0
            self.screen.set_focus(voices)
        await super().action_submit()


def _mark(voice: dict[str, Any], profile: str | None) -> str:
    """In front of a voice's label: ▶ the one playing, ✖ one that cannot load now (selecting it shows why), both
    for the one playing whose file broke since it loaded (it plays on); in front, where a long label's cut leaves
    it be."""
    active, broken = voice["name"] == profile, bool(voice.get("error"))
    return "▶✖ " if active and broken else "▶ " if active else "✖ " if broken else "  "


def _cells(text: str, n: int) -> str:
    """The start of `text` that takes at most `n` cells."""
    out = ""
    for c in text:
        if cell_len(out + c) > n:
            break
        out += c
    return out


def _differs_at(label: str, labels: list[str]) -> int:
    """Where the label first differs from the others': the length of the longest start it shares with one."""
    shared = 0
    for other in labels:
        if other != label:
            n = min(len(label), len(other))
            shared = max(shared, next((i for i in range(n) if label[i] != other[i]), n))
    return shared


class VoiceRow(Visual):
    """A voice's row: its mark, then its label cut to the list's width (known only as the row is drawn) where the
    cut leaves the point where it differs from the other labels in view. Cut at its end alone, 45 labels "Many voice
    number NN with a long label" all read "Many voice num…" at 80 columns; this one reads "Many…mber 07 wit…"."""

    HEAD = 4  # the label's start kept before the cut, for what it is about

    def __init__(self, mark: str, label: str, differs_at: int):
        self.mark, self.label, self.differs_at = mark, label, differs_at

    def __str__(self) -> str:
        return self.mark + self.label

    def cut(self, width: int) -> str:
        """The row at `width` cells. Counted in cells, not characters: a label with wide characters (CJK, emoji) was
        cut only at its end, and "🎤 Anime voice pack, girl 1/2/3" all read "🎤 Anime voice…" (a review)."""
        label, room = self.label, width - cell_len(self.mark)
        # (fits; or the end's cut, which keeps room - 1 cells and its "…", leaves the difference be)
        fits = cell_len(label) <= room or cell_len(label[: self.differs_at + 1]) <= room - 1
        if fits or room < 3 * self.HEAD:  # (or too narrow)
            return str(self)
        head = _cells(label, self.HEAD)
        rest = room - cell_len(head) - 1  # after the head and its "…"
        # the window of the label after the head that holds the difference in its middle, or reaches the end
        start = max(len(head), self.differs_at)
        while start > len(head) and cell_len(label[start - 1 : self.differs_at + 1]) <= rest // 2:
            start -= 1
        while start > len(head) and cell_len(label[start - 1 :]) <= rest:
            start -= 1
        tail = label[start:]
        if cell_len(tail) > rest:
            tail = _cells(tail, rest - 1) + "…"
        return f"{self.mark}{head}…{tail}"

    def render_strips(self, width: int, height: int | None, style: Style, options: RenderOptions) -> list[Strip]:
        return Content(self.cut(width)).render_strips(width, height, style, options)  # (a label is text, not markup)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return cell_len(str(self))

    def get_height(self, rules: RulesMap, width: int) -> int:
        return 1


class VoiceListMixin:
    def _voice_row(self, voice: dict[str, Any], profile: str | None) -> VoiceRow:
        label = voice.get("label") or voice["name"]
        labels = [v.get("label") or v["name"] for v in self.voices]
        return VoiceRow(_mark(voice, profile), label, _differs_at(label, labels))

    def _fill_voice_list(self) -> None:
        needle = self.query_one("#filter", Input).value.strip().lower()
        ol = self.query_one("#voices", OptionList)
        at = ol.highlighted
        kept = ol.get_option_at_index(at).id if at is not None and at < ol.option_count else None
        ol.clear_options()
        for v in self.voices:
            label = v.get("label") or v["name"]
            if needle and needle not in label.lower() and needle not in v["name"].lower():
                continue
            ol.add_option(Option(self._voice_row(v, self.state.get("profile")), id=v["name"], disabled=False))
        self._mark_active(self.state.get("profile"))
        # the cursor stays where it was (a list refilled on every voice change lost it: the next down-arrow
        # started from the top, and Enter picked another voice than meant); else on the active voice
        for want in (kept, self.state.get("profile")):
            index = next((i for i in range(ol.option_count) if ol.get_option_at_index(i).id == want), None)
            if want is not None and index is not None:
                ol.highlighted = index
                break

    def _mark_active(self, profile: str | None) -> None:
        ol = self.query_one("#voices", OptionList)
        by_name = {v["name"]: v for v in self.voices}
        for i in range(ol.option_count):
            opt = ol.get_option_at_index(i)
            v = by_name.get(opt.id or "", {"name": opt.id})
            row = self._voice_row(v, profile)
            if str(opt.prompt) != str(row):  # (a row again: a string would be read as markup)
                ol.replace_option_prompt_at_index(i, row)

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.focused is self.query_one("#filter", Input):
            self.query_one("#voices", OptionList).focus()
            event.stop()
        from rtvc.tui.toggle import Toggle

        if event.character and event.character in "0123456789." and isinstance(self.focused, Toggle):
            # (a user typing a pitch on the mute switch: the digits were dropped unsaid, and the Enter after them
            # muted the stream; a review)
            self.show_message(
                f"'{event.character}' types a value for a parameter, and the {self.focused.label} switch has the "
                "focus (Enter switches it): down or tab to a parameter first",
                error=True,
            )

    def option_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.select_voice(event.option.id)

    @work(group="select", exclusive=True, exit_on_error=False)
    async def select_voice(self, name: str) -> None:
        v = next((v for v in self.voices if v["name"] == name), {})
        if v.get("error"):  # asked again: the missing file may be there now (only profile files are watched)
            try:
                self.apply_voices((await self._call("voices.list"))["voices"])
            except CallError:
                return
            v = next((v for v in self.voices if v["name"] == name), {})
        if v.get("error"):
            self.show_message(f"voice '{name}' cannot load: {v['error']}", error=True, refusal=True)
            return
        self.show_message(f"loading voice '{name}'…")
        try:
            await self._call("voices.select", name=name)
        except CallError:
            return
        self.show_message(f"voice '{name}'")
