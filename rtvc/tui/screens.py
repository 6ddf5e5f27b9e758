"""The TUI's pop-up screens: help, "save these settings to a profile", and the device picker.

Each is a ModalScreen that returns its answer with `dismiss()`; the app does the API call, so every daemon
error ends up in the same message line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from rtvc.names import NAME_RE


class Modal(ModalScreen[Any]):
    DEFAULT_CSS = """
    Modal { align: center middle; }
    Modal > Vertical { width: 90; max-width: 95%; height: auto; max-height: 90%;
                       border: round $accent; background: $surface; padding: 0 1; }
    Modal Label { width: 1fr; }
    Modal .title { text-style: bold; }
    Modal .hint { color: $text-muted; }
    Modal .error { color: $error; }
    Modal OptionList { height: auto; max-height: 16; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Close")]


HELP_HINT = "Esc closes; up/down, PgUp/PgDn scroll. Ctrl+P: every action by name."


class HelpScreen(Modal):
    DEFAULT_CSS = """
    HelpScreen #keys { height: auto; }
    """

    def __init__(self, keys: list[tuple[str, str]]):
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        t = Table.grid(padding=(0, 2))  # (a long line wraps in its own column, under its words, not the keys')
        t.add_column(justify="right", style="bold cyan", no_wrap=True)  # (as wide as "0-9 . - Enter")
        t.add_column()
        for key, what in self.keys:
            t.add_row(key, what)
        with Vertical():
            yield Label("rtvc: keys", classes="title")
            with VerticalScroll(id="keys"):  # (at 80x24 the last keys and this hint were cut off, and nothing scrolled)
                yield Static(t)
            yield Label(HELP_HINT, classes="hint")

    def on_mount(self) -> None:
        self.query_one("#keys", VerticalScroll).focus()
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The keys' part as tall as the box leaves it (the box: 90% of the screen, less its border, title and
        hint), so the hint stays on screen and the keys scroll."""
        inner = max(10, min(90, self.size.width * 95 // 100) - 4)  # (Modal's box: its border and padding)
        hint_rows = -(-len(HELP_HINT) // inner) + 1  # (words wrap short of the edge: one row spare)
        self.query_one("#keys", VerticalScroll).styles.max_height = max(2, self.size.height * 9 // 10 - 3 - hint_rows)

    BINDINGS: ClassVar[list[Binding]] = [*Modal.BINDINGS, Binding("question_mark,f1,q", "dismiss(None)", show=False)]


SAVE_ABOUT_ROWS = 16  # terminal rows under which the save box leaves out its line about what is saved


class SaveScreen(Modal):
    """Asks for a profile name; returns (name, overwrite) or None. A name in use is replaced only after a second
    Enter (the daemon refuses to replace a profile unless told to)."""

    def __init__(self, current: str, taken: set[str] | None = None):
        super().__init__()
        self.current = current
        self.taken = taken or set()
        self._confirm: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save these settings to a profile", classes="title")
            yield Label(
                Content(f"voice and parameters as they are now; the active profile is '{self.current}'"),
                classes="hint",
                id="about",
            )
            yield Input(placeholder="profile name (ASCII letters, digits, - and _)", id="name")
            yield Label("Enter saves, Esc cancels.", classes="hint", id="why")

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """On a short terminal the line about what is saved goes: the box's last line, what Enter does ("exists:
        Enter again replaces it"), was cut at 40x10 to "profile 'giant' exists: Enter" (a review)."""
        self.query_one("#about", Label).display = self.size.height >= SAVE_ABOUT_ROWS

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not NAME_RE.fullmatch(name) and name not in self.taken:  # (a profile made by hand: "my voice")
            self.query_one("#why", Label).update(
                "use 1-64 ASCII letters (a-z, A-Z), digits, - or _, starting with a letter or digit"
            )
            return
        if name in self.taken and self._confirm != name:
            self._confirm = name
            self.query_one("#why", Label).update(f"profile '{name}' exists: Enter again replaces it, Esc cancels")
            return
        self.dismiss((name, name in self.taken))

    def on_input_changed(self, event: Input.Changed) -> None:
        """While a name is typed the hint says what Enter will do with it (a refusal stayed on screen)."""
        name = event.value.strip()
        if not name or NAME_RE.fullmatch(name) or name in self.taken:
            said = "Enter saves"
            if name in self.taken:
                said = f"profile '{name}' exists: Enter, then Enter again, replaces it"
            self.query_one("#why", Label).update(f"{said}, Esc cancels.")


class DeviceScreen(Modal):
    """Lists the daemon's sound devices; returns ("input" | "output" | "monitor", device) or None (device "" for
    the monitor: none), or ("rescan", "") for `r`: look for devices plugged in since the daemon started. The
    device is its name where no other has it, else its index."""

    BINDINGS: ClassVar[list[Binding]] = [
        *Modal.BINDINGS,
        Binding("r", "dismiss(('rescan', ''))", "Look again"),
        Binding("q", "dismiss(None)", show=False),  # (as in help: q here closes this, a second q quits)
    ]

    def __init__(self, listing: dict[str, Any], words: Callable[[str], str] = str):
        super().__init__()
        self.listing = listing
        # the daemon's words as they read in this app (RtvcApp._advice), where q closes this screen first
        self.words = lambda text: words(text).replace("(q quits it)", "(q, then q again, quits it)")

    def compose(self) -> ComposeResult:
        in_use = self.listing.get("in_use", {})
        if in_use.get("virtual"):
            now = f"in use: the virtual device (playing {in_use.get('clip', 'a clip')})"
        elif in_use.get("resuming"):  # (a restarted serve whose devices are not back yet)
            now = f"no device runs: {self.words(in_use['resuming'])}"
        else:
            # (a device that is PipeWire's default and followed: a headset plugged in takes its place)
            tag = {role: " (the desktop's default, followed)" for role in in_use.get("follows", [])}
            now = f"in use: input {in_use.get('input', '?')}{tag.get('input', '')}"
            now += f", output {in_use.get('output', '?')}{tag.get('output', '')}"
            now += " (the virtual microphone: what the call records)" if in_use.get("virtual_mic") else ""
            now += f", monitor {in_use.get('monitor') or 'none'}{tag.get('monitor', '')}"
            if in_use.get("stopped"):  # (its own line: after the monitor it read as the monitor's)
                now += f"\nno device runs: {self.words(in_use['stopped'])}"
            if in_use.get("waiting"):  # (JACK connections lost with their program: made again when it is back)
                now += "; waiting for " + ", ".join(f"{q} (was connected to {p})" for p, q in in_use["waiting"])
        options: list[Option] = []
        listed = self.listing.get("devices", [])
        # (counted case and all: the daemon takes the device whose whole name is written so before those that differ
        # only in case, so 'Cam' beside 'cam' is picked by name; rtvc.audio.devices._find)
        names = Counter(d["name"] for d in listed)
        for d in listed:
            # by name where it is the only one of that name: an index changes when the daemon reads the list
            # again (another client's rescan, or a device plugged in) while this screen shows the old one
            by_name = names[d["name"]] == 1 and not d["name"].strip().isdigit()
            pick = d["name"] if by_name else str(d["index"])
            for kind, n in (("input", d["max_input"]), ("output", d["max_output"]), ("monitor", d["max_output"])):
                # (under --virtual-mic the output is the call's microphone, and stays: the daemon refuses another)
                if n and not (kind == "output" and in_use.get("virtual_mic")):
                    text = f"{kind:<7} [{d['index']}] {d['name']} ({d['host_api']})"
                    options.append(Option(Content(text), f"{kind}:{pick}"))  # (a name may hold brackets)
        if listed and not in_use.get("virtual") and "input" not in in_use.get("follows", []):
            options.append(Option("input   the default microphone (followed where PipeWire's JACK runs)", "input:"))
        if listed and not (in_use.get("virtual") or in_use.get("virtual_mic") or "output" in in_use.get("follows", [])):
            options.append(Option("output  the default speakers (followed where PipeWire's JACK runs)", "output:"))
        if in_use.get("monitor"):
            options.append(Option("monitor none (no hear-myself device)", "monitor:"))
        with Vertical():
            yield Label("Sound devices", classes="title")
            yield Label(Content(now), classes="hint")
            if self.listing.get("error"):
                yield Label(Content(self.words(self.listing["error"])), classes="error")
            if not self.listing.get("switchable"):
                yield Label(
                    self.words("this daemon cannot switch devices: choose them in config.toml and restart rtvc serve"),
                    classes="hint",
                )
            if options:
                yield OptionList(*options, id="devices")
            else:
                yield Label("no sound devices found", classes="hint")
            yield Label(
                "Enter switches to the highlighted device, Esc closes." if options and self.listing.get("switchable")
                else "Esc closes.",
                classes="hint",
            )  # fmt: skip
            gap = " (the audio stops for a moment if any came or went)" if self.listing.get("switchable") else ""
            yield Label(f"r looks again for devices plugged in since rtvc started{gap}.", classes="hint")

    def on_mount(self) -> None:
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """The list as tall as the box leaves it (the box: 90% of the screen, less its border and the lines around
        the list, as they wrap), so the hints under it stay on screen and the list scrolls (at 40x15 the list took
        its whole height and "Enter switches / Esc closes / r looks again" were off the box's bottom)."""
        found = self.query("#devices")
        if not found:
            return
        devices = found.first(OptionList)
        box = self.query_one(Vertical)
        around = sum(w.outer_size.height for w in box.children if w is not devices)
        devices.styles.max_height = max(3, min(16, self.size.height * 9 // 10 - 2 - around))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        kind, _, index = (event.option.id or "").partition(":")
        self.dismiss((kind, index))
