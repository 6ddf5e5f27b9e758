"""The noise gate on one line: `G gate ON  opens at -60 dBFS  open  input -41 dBFS rms`.

Its settings come with the state events, whether it is open and the input's level with each meters event
(15 a second: it redraws itself, without a new layout, and only when a figure it shows has changed). The input
level is the one the gate judges (RMS), so the user sets the threshold a few dB above what it reads while
silent. Clicking it (or Enter/space while focused) flips the gate like the `g` key.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from rtvc.tui.toggle import Toggle


class GateLine(Toggle):
    DEFAULT_CSS = "GateLine { width: 1fr; }"

    def __init__(self, id: str | None = None):
        super().__init__("G", "gate", "toggle('gate')", id=id)
        self.threshold_db: float | None = None
        self.closed = False
        self.in_rms: float | None = None

    def set_settings(self, gate: dict[str, Any]) -> None:
        self.threshold_db = gate["threshold_db"]
        self.set(gate["on"])

    def set_meters(self, ev: dict[str, Any]) -> None:
        closed = ev.get("gate") == "closed"
        rms = round(ev["in_rms"]) if "in_rms" in ev else None
        if (closed, rms) != (self.closed, self.in_rms):
            self.closed, self.in_rms = closed, rms
            self.refresh()

    def no_reading(self) -> None:
        """No meter events (the daemon lost or frozen): neither open/closed nor the input level is known."""
        if self.in_rms is not None or self.closed:
            self.closed, self.in_rms = False, None
            self.refresh()

    def render(self) -> Text:
        t = super().render()
        if not self.known:
            return t
        if self.on:
            t.append(f"  opens at {self.threshold_db:g} dBFS  ")
            if self.in_rms is not None:  # (no readings: whether it is open is not known either)
                t.append("closed" if self.closed else "open", style="bold yellow" if self.closed else "green")
        if self.in_rms is not None:
            shown = "silence" if self.in_rms <= -120 else f"{self.in_rms:g} dBFS rms"
            t.append(f"  input {shown}", style="dim")
        return t
