"""Block processing times: a preallocated window of the latest durations, summarised on demand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimingStats:
    count: int  # blocks timed since start
    last_ms: float
    p50_ms: float  # p50 and p99 of the latest `window_blocks` blocks of the voice playing now (what runs now)
    p99_ms: float
    max_ms: float  # the slowest block since start (the window's max hid an hour's worst block after 41 s)
    budget_ms: float  # the block's duration: the real-time limit
    window_blocks: int = 0

    @property
    def load(self) -> float:
        """p50 as a fraction of the block's duration (1.0 = no real-time margin left)."""
        return self.p50_ms / self.budget_ms if self.budget_ms else 0.0


class BlockTimer:
    def __init__(self, budget_s: float, window: int = 2048):
        self._durations = np.zeros(window, dtype=np.float64)
        self._count = 0
        self._budget_s = budget_s
        self._max = 0.0
        self._from = 0  # the count at the latest restart: the window holds no block from before it

    def record(self, seconds: float) -> None:
        """Worker thread: one store and a compare, no allocation."""
        self._durations[self._count % len(self._durations)] = seconds
        self._count += 1
        if seconds > self._max:
            self._max = seconds

    def restart(self, at: int) -> None:
        """Worker thread, at a voice switch: p50 and p99 from block `at` (a count) on, the new voice's. A switch from
        the default voice (2 ms a block) to an RVC voice that could not keep up (60-116 ms, most blocks skipped) showed
        p50 2 ms beside "overloaded" for minutes: the window held ~1750 blocks of the old voice."""
        self._from = at

    @property
    def count(self) -> int:
        return self._count

    def since(self, count: int) -> np.ndarray:
        """Any thread: the durations (s) recorded since `count` was read (at most the window's worth)."""
        n = min(self._count - count, len(self._durations))
        idx = (np.arange(self._count - n, self._count)) % len(self._durations)
        return self._durations[idx].copy()

    def stats(self) -> TimingStats:
        """Any thread: a copy of the window, summarised."""
        count = self._count
        if count == 0:
            return TimingStats(0, 0.0, 0.0, 0.0, 0.0, self._budget_s * 1e3, 0)
        # (before the new voice's first block: the window as it was)
        n = min(count - self._from if count > self._from else count, len(self._durations))
        d = self._durations[(np.arange(count - n, count)) % len(self._durations)] * 1e3
        last = d[-1]
        p50, p99 = np.percentile(d, [50, 99])
        worst = max(self._max * 1e3, float(d.max()))  # (read apart from the window: never below its max)
        return TimingStats(count, float(last), float(p50), float(p99), worst, self._budget_s * 1e3, n)
