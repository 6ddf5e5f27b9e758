"""The noise gate on one line: `G gate ON  opens at -60 dBFS  open  input -41 dBFS rms`.

Its settings come with the state events, whether it is open and the input's level with each meters event
(15 a second: it redraws itself only when a figure it shows has changed, with a new layout only when its text's
length did). The input level is the one the gate judges (RMS), so the user sets the threshold by what it reads
while silent: about 10 dB
above it, as the gate closes only 6 dB under its threshold (HYSTERESIS_DB). Where the gate has stayed open for
NEAR_S with the input under its threshold (a room a few dB under it: the gate never closes), the line says so and
what to do. Clicking it (or Enter/space while focused) flips the gate like the `g` key.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from rtvc.gate import HYSTERESIS_DB
from rtvc.tui.toggle import Toggle

NEAR_S = 2.0  # the input this long within HYSTERESIS_DB under the threshold, the gate open: said on the line
clock = time.monotonic  # (a test's own)


class GateLine(Toggle):
    DEFAULT_CSS = "GateLine { width: 1fr; }"

    def __init__(self, id: str | None = None):
        super().__init__("G", "gate", "toggle('gate')", id=id)
        self.threshold_db: float | None = None
        self.closed = False
        self.in_rms: float | None = None
        self._near_since: float | None = None  # since when the input has kept the gate open from under its threshold
        self.stuck = False  # ... for NEAR_S

    def set_settings(self, gate: dict[str, Any]) -> None:
        self.threshold_db = gate["threshold_db"]
        self.set(gate["on"])

    def set_meters(self, ev: dict[str, Any]) -> None:
        closed = ev.get("gate") == "closed"
        rms = round(ev["in_rms"]) if "in_rms" in ev else None
        th = self.threshold_db
        # (readings under the band too: the gate judges 10 ms windows and closes only after hold_ms under it; open all
        # along with the input under its threshold, something in the band holds it: a reading's dip under the band
        # made the hint come and go, a review)
        near = self.on and not closed and rms is not None and th is not None and rms < th
        now = clock()
        self._near_since = (self._near_since or now) if near else None
        stuck = near and now - self._near_since >= NEAR_S
        if (closed, rms, stuck) != (self.closed, self.in_rms, self.stuck):
            self._redraw(closed, rms, stuck)

    def no_reading(self) -> None:
        """No meter events (the daemon lost or frozen): neither open/closed nor the input level is known."""
        self._near_since = None
        if self.in_rms is not None or self.closed or self.stuck:
            self._redraw(False, None, False)

    def _redraw(self, closed: bool, rms: float | None, stuck: bool) -> None:
        # a new layout where the text's length changed (the line's height is its wrapped text's: kept from the last
        # layout, the warning that comes went past 80 and 100 columns unseen, or a blank second row stayed)
        was = self.render().cell_len
        self.closed, self.in_rms, self.stuck = closed, rms, stuck
        self.refresh(layout=self.render().cell_len != was)

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
        if self.stuck and self.on:  # (the room holds it open: it closes only HYSTERESIS_DB under the threshold)
            t.append(f"  ⚠ closes under {self.threshold_db - HYSTERESIS_DB:g}: raise it", style="bold yellow")
        return t
