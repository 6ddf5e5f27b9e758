"""Single-producer/single-consumer ring of audio frames, lock-free, preallocated.

Positions are monotonic frame counts: the producer alone advances `write_pos`, the consumer alone advances
`read_pos`. Each side copies its samples first and publishes its position after, so the other side never
sees a position ahead of the data (CPython's GIL orders the plain attribute stores).

Two ways to consume:
- `read(out)` takes what is there (the worker reading whole blocks);
- `read_timeline(out)` always advances by len(out): frames that have not arrived are played as zeros
  (an underrun) and, when they arrive later, are dropped as late. The output ring uses it so that an
  underrun never shifts the timeline: the latency stays what was declared.

Nothing is smoothed over: overrun, underrun and late frames are counted.
"""

from __future__ import annotations

import numpy as np


class SpscRing:
    def __init__(self, capacity: int, dtype: np.dtype | type = np.float32):
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1 frame, got {capacity}")
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=dtype)
        self.write_pos = 0  # frames published by the producer (timeline position)
        self.read_pos = 0  # frames consumed by the consumer (timeline position)
        # producer-side counters
        self.overrun_frames = 0  # dropped: the ring was full
        self.overrun_events = 0
        self.late_frames = 0  # dropped: the consumer had already played their slot
        # consumer-side counters
        self.underrun_frames = 0  # played as zeros: not there in time
        self.underrun_events = 0

    # -- either side ----------------------------------------------------------------------------
    def available(self) -> int:
        """Frames the consumer can read now."""
        return max(0, self.write_pos - self.read_pos)

    def free(self) -> int:
        """Frames the producer can write now."""
        return self.capacity - self.available()

    # -- producer -------------------------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Append `frames`; returns how many were kept. Late and overflowing frames are counted."""
        n = len(frames)
        w, r = self.write_pos, self.read_pos
        skip = min(n, r - w) if r > w else 0  # slots the consumer has already played
        if skip:
            self.late_frames += skip
        room = r + self.capacity - (w + skip)
        keep = min(n - skip, room)
        if keep < n - skip:
            self.overrun_frames += n - skip - keep
            self.overrun_events += 1
        if keep > 0:
            self._put(w + skip, frames[skip : skip + keep])
        self.write_pos = w + skip + max(keep, 0)
        return max(keep, 0)

    def _put(self, pos: int, x: np.ndarray) -> None:
        i = pos % self.capacity
        first = min(len(x), self.capacity - i)
        self._buf[i : i + first] = x[:first]
        if first < len(x):
            self._buf[: len(x) - first] = x[first:]

    # -- consumer -------------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Copy up to len(out) frames into `out`; returns how many. Never waits, never zero-fills."""
        n = min(len(out), self.write_pos - self.read_pos)
        if n <= 0:
            return 0
        self._get(self.read_pos, out[:n])
        self.read_pos += n
        return n

    def read_timeline(self, out: np.ndarray) -> int:
        """Fill all of `out` and advance by len(out); frames not yet written become zeros (underrun)."""
        want = len(out)
        n = max(0, min(want, self.write_pos - self.read_pos))
        if n:
            self._get(self.read_pos, out[:n])
        if n < want:
            out[n:] = 0
            self.underrun_frames += want - n
            self.underrun_events += 1
        self.read_pos += want
        return n

    def _get(self, pos: int, out: np.ndarray) -> None:
        i = pos % self.capacity
        first = min(len(out), self.capacity - i)
        out[:first] = self._buf[i : i + first]
        if first < len(out):
            out[first:] = self._buf[: len(out) - first]
