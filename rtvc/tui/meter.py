"""A one-line level meter in dBFS with peak hold: `in   ███████████▌·····│···  -18.2 dBFS`.

The bar shows the block peak on a -60..0 dBFS scale (the range a voice lives in); the hold mark stays at
the highest peak for HOLD_S seconds, then falls at FALL_DB_PER_S. The clock is injected so a snapshot is
the same every run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from rich.text import Text
from textual.widget import Widget

LO_DB, HI_DB = -60.0, 0.0
HOLD_S = 1.5
FALL_DB_PER_S = 20.0
LABEL_W = 5
VALUE_W = 12
EIGHTHS = " ▏▎▍▌▋▊▉"


def _position(db: float, width: int) -> float:
    """Cells from the left (fractional) for a level."""
    return max(0.0, min(1.0, (db - LO_DB) / (HI_DB - LO_DB))) * width


class LevelMeter(Widget):
    DEFAULT_CSS = "LevelMeter { height: 1; width: 1fr; }"

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic, id: str | None = None):
        super().__init__(id=id)
        self.label = label
        self.clock = clock
        self.level = -120.0  # dBFS, the latest block's peak
        self.hold = -120.0
        self._hold_at = 0.0
        self.reading = True  # False: no readings come (the daemon lost or frozen): no bar, not a level
        self.limit = 0.0  # dB the output limiter took off (rtvc.limiter), shown for HOLD_S after it did
        self._limit_at = -math.inf

    def no_reading(self) -> None:
        """The daemon sends no readings: the meter shows none (a frozen bar looked like a live level)."""
        if self.reading:
            self.reading, self.level, self.hold = False, -120.0, -120.0
            self.refresh()

    def set_level(self, db: float, limit_db: float = 0.0) -> None:
        """`limit_db`: what the output limiter took off (< 0: the voice would have clipped), shown in place of the
        level for HOLD_S, the most of that time."""
        now = self.clock()
        if limit_db < -0.05:
            if now - self._limit_at > HOLD_S or limit_db < self.limit:
                self.limit = limit_db
            self._limit_at = now
        held = self.hold - max(0.0, now - self._hold_at - HOLD_S) * FALL_DB_PER_S
        if db >= held:
            self.hold, self._hold_at = db, now
        else:
            self.hold = held
            if now - self._hold_at > HOLD_S:  # falling: keep falling from here
                self._hold_at = now - HOLD_S
        self.level = db
        self.reading = True
        self.refresh()

    def render(self) -> Text:
        width = max(1, self.size.width - LABEL_W - VALUE_W)
        t = Text(f"{self.label:<{LABEL_W}}")
        pos = _position(self.level, width)
        full = int(pos)
        colour = "red" if self.level > -3 else "yellow" if self.level > -12 else "green"
        part = int((pos - full) * 8) if full < width else 0
        bar = "█" * full + (EIGHTHS[part] if part else "")
        hold = min(width - 1, int(_position(self.hold, width))) if self.hold > LO_DB else -1
        t.append(bar, style=colour)
        if hold >= len(bar):
            t.append("·" * (hold - len(bar)), style="dim")
            t.append("│", style="bold red" if self.hold > -3 else "bold")
            t.append("·" * (width - hold - 1), style="dim")
        else:
            t.append("·" * (width - len(bar)), style="dim")
        if self.reading and self.clock() - self._limit_at <= HOLD_S:  # (the limiter: the level shows 0 dBFS)
            t.append(f"{f'limit {self.limit:.1f}':>{VALUE_W}}", style="bold red")
            return t
        shown = "no reading" if not self.reading else "  silence" if self.level <= -120 else f"{self.level:6.1f} dBFS"
        t.append(f"{shown:>{VALUE_W}}")
        return t


BARS = " ▁▂▃▄▅▆▇█"


class BlockTimes(Widget):
    """The worker's recent block times, one cell each, newest on the right, on the block's own budget: a full bar
    is the whole budget (a block that late leaves the output nothing), yellow from half of it, red at it. (Textual's
    Sparkline scales to its own largest reading: a 6 ms block in a 20 ms budget drew a full bar, as if late.)"""

    DEFAULT_CSS = "BlockTimes { height: 1; width: 1fr; }"

    def __init__(self, id: str | None = None):
        super().__init__(id=id)
        self.times: list[float] = []
        self.budget = 0.0

    def show(self, times: list[float], budget: float) -> None:
        self.times, self.budget = times, budget
        self.refresh()

    def render(self) -> Text:
        width = self.size.width
        shown = self.times[-width:] if width > 0 and self.budget > 0 else []
        t = Text(" " * (width - len(shown)) if width > 0 else "")
        for ms in shown:
            share = ms / self.budget
            level = 0 if ms <= 0 else min(8, max(1, math.ceil(share * 8)))
            t.append(BARS[level], style="red" if share >= 1 else "yellow" if share >= 0.5 else "green")
        return t
