"""A one-line number stepper: `pitch  ◀ ━━━━━●━━━━ ▶  -4.0 st`. Textual has no slider, so it is built
from a plain focusable Widget.

Keyboard: left/right (or +) step, shift+left/right (or page up/down) take big steps, home/end jump to the
ends; a digit, '.' or '-' starts typing a value (Enter sets it, Escape cancels, '-' flips its sign, Backspace
deletes), Enter alone starts typing too. ('-' stepped down once: "-5" Enter then set +5, the voice a step down
and then ten semitones up, live.) The value kept is always the daemon's: one that changes while the user types
is taken (the typed text stays on top), so Escape shows it and Enter compares against it. Mouse: click the
arrows to step, click the bar to set a value, or scroll over it. Every change the user makes posts
`Stepper.Changed`; setting `value` from the daemon's state does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

LABEL_W = 11
VALUE_W = 10
MIN_BAR = 5  # narrower than this, the bar goes (then the label's tail): the value always shows
DECIMALS = 3  # a typed value is kept to this many (a thousandth of a semitone is 0.1 cent)
BAR_MAX_POINTS = 1000  # wider ranges (a speaker id) show no bar: a position in 0..100000 means nothing


@dataclass(frozen=True)
class Spec:
    name: str
    lo: float
    hi: float
    step: float
    big: float
    integer: bool = False
    unit: str = ""
    help: str = ""

    def clamp(self, v: float) -> float:
        v = min(self.hi, max(self.lo, v))
        # (an int for an integer: a speaker id is sent as 1, not 1.0; halves up, not Python's to-even: 0.5 is 1;
        # + 0.0: -0 is 0, not a change to -0.0 that sounds the same)
        return math.floor(v + 0.5) if self.integer else round(v, DECIMALS) + 0.0

    def snap(self, v: float) -> float:
        """The step nearest v, counted from lo (the grid the steps walk on from either end of a range that is whole
        steps long), within the range."""
        return self.clamp(self.lo + round((v - self.lo) / self.step) * self.step) if self.step > 0 else self.clamp(v)

    def show(self, v: float) -> str:
        """The value as the daemon holds it: the step's decimals, more where it has them (-4.25 typed is not
        -4.2 on screen), to DECIMALS."""
        digits = 0 if self.integer else (2 if self.step < 0.1 else 1)
        while digits < DECIMALS and abs(round(v, digits) - v) > 1e-9:
            digits += 1
        return f"{v + 0.0:.{digits}f}{(' ' + self.unit) if self.unit else ''}"


class Stepper(Widget, can_focus=True):
    DEFAULT_CSS = """
    Stepper { height: 1; width: 1fr; }
    Stepper:focus { background: $boost; }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("left", "step(-1)", "-", show=False),
        Binding("right,plus,equals_sign", "step(1)", "+", show=False),
        Binding("shift+left,pagedown", "step(-10)", show=False),
        Binding("shift+right,pageup", "step(10)", show=False),
        Binding("home", "jump(-1)", show=False),
        Binding("end", "jump(1)", show=False),
    ]

    class Changed(Message):
        def __init__(self, stepper: Stepper, value: float):
            super().__init__()
            self.stepper = stepper
            self.value = value

    def __init__(self, spec: Spec, value: float, id: str | None = None):
        super().__init__(id=id)
        self.spec = spec
        self._value = spec.clamp(value)
        self.typing: str | None = None  # the value being typed, or None

    @property
    def value(self) -> float:
        return self._value

    @value.setter
    def value(self, v: float) -> None:
        """From the daemon: shown, not sent back."""
        self._value = self.spec.clamp(v)
        self.refresh()

    def _user_set(self, v: float) -> None:
        v = self.spec.clamp(v)
        if v != self._value:
            self._value = v
            self.refresh()
            self.post_message(self.Changed(self, v))

    def action_step(self, n: int) -> None:
        if self.typing is None:  # (while a value is typed a step does nothing: a scroll flipped its sign)
            s = self.spec
            self._user_set(self._value + (s.big * (n // 10) if abs(n) >= 10 else s.step * n))

    def _flip_sign(self) -> None:
        assert self.typing is not None
        self.typing = self.typing[1:] if self.typing.startswith("-") else "-" + self.typing

    def action_jump(self, end: int) -> None:
        if self.typing is None:  # (as a step: End while typing set the end, and Escape then left it there)
            self._user_set(self.spec.hi if end > 0 else self.spec.lo)

    def on_key(self, event: events.Key) -> None:
        ch = event.character or ""
        if self.typing is None:
            if ch.isdigit() or ch == "." or ch == "-":
                self.typing = ch
            elif event.key == "enter":
                self.typing = ""
            else:
                return
        elif ch.isdigit() or ch == "." or (ch == "-" and not self.typing):
            self.typing += ch
        elif event.key == "backspace":
            self.typing = self.typing[:-1]
        elif event.key == "escape":
            self.typing = None
        elif event.key == "enter" and not self.typing.strip("-"):
            self.typing = None  # (Enter, Enter: nothing typed, nothing to say)
        elif event.key == "enter":
            text, self.typing = self.typing, None
            try:
                typed = float(text)
            except ValueError:
                self._say(f"{self.spec.name}: {text!r} is not a number")
            else:
                s = self.spec
                sets = int(s.clamp(typed) != self._value)  # (the set that follows: it must not clear what is said)
                if not s.lo <= typed <= s.hi:  # (set to the end it passed, and said: 99 became 24 in silence)
                    ends = f"{s.show(s.lo)} to {s.show(s.hi)}"
                    self._say(f"{s.name}: {text} is past its range ({ends}): {s.show(s.clamp(typed))}", sets)
                elif s.integer and typed != int(typed):  # (1.5 became 2 in silence, 0.5 became 0)
                    self._say(f"{s.name} takes whole numbers: {text} set as {s.show(s.clamp(typed))}", sets)
                self._user_set(typed)
        elif event.key == "minus":
            self._flip_sign()
        elif event.key in ("left", "right"):
            pass  # (no step while a value is typed; left used to flip its sign)
        else:
            return
        event.stop()
        event.prevent_default()
        self.refresh()

    def _say(self, text: str, calls_after: int = 0) -> None:
        """On the app's message line where it has one (rtvc's: a refusal, cleared by the next call that works but
        the `calls_after` this key makes), else as a notification."""
        show = getattr(self.app, "show_message", None)
        if show is not None:
            show(text, error=True, refusal=True, calls_after=calls_after)
        else:
            self.notify(text, severity="warning", markup=False)

    def on_blur(self) -> None:
        self.typing = None
        self.refresh()

    # -- mouse ----------------------------------------------------------------------------------------
    def _layout(self) -> tuple[int, int, int, int]:
        """Label width, the bar's first and end columns (between the arrows), value width. Short of room
        (a 40-column terminal), the bar goes first, then the label's tail; the value always shows."""
        w = self.size.width
        if w - LABEL_W - VALUE_W - 4 >= MIN_BAR:
            return LABEL_W, LABEL_W + 2, w - VALUE_W - 2, VALUE_W
        s = self.spec
        value_w = max(len(s.show(s.lo if s.lo < 0 else s.hi)), len(s.show(self._value))) + 1
        label_w = max(1, min(LABEL_W, w - value_w - 4))
        return label_w, label_w + 2, label_w + 2, value_w

    def on_click(self, event: events.Click) -> None:
        label_w, a, b, _ = self._layout()
        if event.x in (label_w, label_w + 1):  # ◀
            self.action_step(-1)
        elif event.x in (b, b + 1):  # ▶
            self.action_step(1)
        elif a <= event.x < b and self._has_bar():
            s = self.spec
            # (on the step's grid: a click set -1.92 or 0.96 st, and a scroll then stepped with the offset)
            self._user_set(s.snap(s.lo + (s.hi - s.lo) * (event.x - a) / max(1, b - a - 1)))
        self.focus()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_step(1)
        event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_step(-1)
        event.stop()

    # -- drawing --------------------------------------------------------------------------------------
    def _has_bar(self) -> bool:
        s = self.spec
        return (s.hi - s.lo) / (1 if s.integer else s.step) <= BAR_MAX_POINTS

    def render(self) -> Text:
        s = self.spec
        label_w, a, b, value_w = self._layout()
        width = b - a
        t = Text(f"{s.name[: label_w - 1]:<{label_w}}", style="bold" if self.has_focus else "")
        t.append("◀ ", style="bold cyan" if self.has_focus else "dim")
        if self._has_bar() and width > 1:
            pos = round((self._value - s.lo) / (s.hi - s.lo) * (width - 1)) if s.hi > s.lo else 0
            t.append("━" * pos, style="cyan")
            t.append("●", style="bold")
            t.append("─" * (width - pos - 1), style="dim")
        else:
            t.append(" " * width)
        t.append(" ▶", style="bold cyan" if self.has_focus else "dim")
        shown = (self.typing + "▏") if self.typing is not None else s.show(self._value)
        if len(shown) > value_w:  # (a long typed value: its end shows, where the cursor is)
            shown = "…" + shown[-(value_w - 1) :]
        t.append(f"{shown:>{value_w}}", style="reverse" if self.typing is not None else "")
        return t
