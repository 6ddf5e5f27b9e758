"""Single-producer/single-consumer ring of audio frames, lock-free, preallocated.

Positions are monotonic frame counts: the producer alone advances `write_pos`, the consumer alone advances
`read_pos`. Each side copies its samples first and publishes its position after, so the other side never
sees a position ahead of the data (CPython's GIL orders the plain attribute stores).

Two ways to consume:
- `read_into(out)` takes what is there (the worker reading whole blocks);
- `read_timeline(out)` always advances by len(out): frames that have not arrived are played as zeros
  (an underrun) and, when they arrive later, are dropped as late. The output rings use it so that an
  underrun never shifts the timeline: the latency stays what was declared.

The producer is never refused: when the consumer has fallen more than the ring behind (a stalled worker, an
output stream whose callbacks stopped), the newest `capacity` frames are kept, the oldest unread ones are
overwritten, and the consumer skips them, counted as overrun. So positions stay the clock's on both sides (a
ring that refused the newest frames would make every later position name older audio than the clock says).
The consumer checks after copying that the producer did not overwrite what it copied: the producer publishes
the end of its write (`_claim`) before copying, as a seqlock does.

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
        self._claim = 0  # the end of the write under way: positions below _claim - capacity may be overwritten
        self.late_frames = 0  # producer: dropped, the consumer had already played their slot
        # consumer-side counters
        self.overrun_frames = 0  # overwritten before the consumer read them: it had fallen a ring behind
        self.overrun_events = 0
        self.underrun_frames = 0  # played as zeros: not there in time
        self.underrun_events = 0

    def restart(self) -> None:
        """Both sides idle (a device switch, a start): positions back to 0; the counters stay."""
        self.read_pos = self.write_pos = self._claim = 0

    # -- either side ----------------------------------------------------------------------------
    def available(self) -> int:
        """Frames the consumer can read now (not counting those overwritten)."""
        return max(0, self.write_pos - max(self.read_pos, self._claim - self.capacity))

    def overwritten(self) -> int:
        """Frames the producer overwrote before the consumer read them, not yet skipped by the consumer."""
        return max(0, self._claim - self.capacity - self.read_pos)

    def free(self) -> int:
        """Frames the producer can write without overwriting unread ones."""
        return self.capacity - self.available()

    # -- producer -------------------------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Append `frames`; returns how many the consumer can still get. Frames whose slot the consumer has
        already played are dropped as late; past a full ring the oldest unread frames are overwritten."""
        n = len(frames)
        w, r = self.write_pos, self.read_pos
        late = min(n, r - w) if r > w else 0
        if late:
            self.late_frames += late
        keep = min(n - late, self.capacity)  # (a write longer than the ring keeps its newest part)
        self._claim = w + n  # published before the copy: the consumer checks it after its own
        if keep:
            self._put(w + n - keep, frames[n - keep :])
        self.write_pos = w + n
        return n - late

    def advance(self, n: int) -> None:
        """Move on n frames with nothing to write (the worker dropped input that far behind). Slots the
        consumer has not played yet get silence; those it has were played as an underrun already."""
        w, r = self.write_pos, self.read_pos
        zeros = min(w + n - max(w, r), self.capacity)
        self._claim = w + n
        if zeros > 0:
            self._zero(w + n - zeros, zeros)
        self.write_pos = w + n

    def _zero(self, pos: int, n: int) -> None:
        i = pos % self.capacity
        first = min(n, self.capacity - i)
        self._buf[i : i + first] = 0
        self._buf[: n - first] = 0

    def _put(self, pos: int, x: np.ndarray) -> None:
        i = pos % self.capacity
        first = min(len(x), self.capacity - i)
        self._buf[i : i + first] = x[:first]
        if first < len(x):
            self._buf[: len(x) - first] = x[first:]

    # -- consumer -------------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Copy up to len(out) frames into `out`; returns how many. Never waits, never zero-fills.
        Frames that were overwritten before they were read are skipped and counted."""
        while True:
            self.skip_overwritten()
            r = self.read_pos
            n = min(len(out), self.write_pos - r)
            if n <= 0:
                return 0
            self._get(r, out[:n])
            if self._claim - self.capacity <= r:  # nothing we copied was overwritten meanwhile
                self.read_pos = r + n
                return n

    def read_timeline(self, out: np.ndarray) -> int:
        """Fill all of `out` and advance by len(out); frames not yet written become zeros (underrun), and so
        does a copy the producer overwrote meanwhile (this consumer had fallen a ring behind)."""
        want = len(out)
        self.skip_overwritten()
        r = self.read_pos
        n = max(0, min(want, self.write_pos - r))
        if n:
            self._get(r, out[:n])
            if self._claim - self.capacity > r:
                n = 0
        if n < want:
            out[n:] = 0
            self.underrun_frames += want - n
            self.underrun_events += 1
        self.read_pos = r + want
        return n

    def skip_overwritten(self) -> int:
        """Consumer: step over frames the producer overwrote before they were read; returns how many."""
        lost = self.overwritten()
        if lost:
            self.read_pos += lost
            self.overrun_frames += lost
            self.overrun_events += 1
        return lost

    def skip_to(self, pos: int, count: bool = False) -> int:
        """Consumer: drop what is readable before `pos` unread (never past what was written), counted as overrun
        if `count`; returns how many frames it dropped besides those overwritten."""
        lost = self.skip_overwritten()
        n = max(0, min(pos, self.write_pos) - self.read_pos)
        self.read_pos += n
        if count and n:
            self.overrun_frames += n
            self.overrun_events += not lost  # (one jump, one event)
        return n

    def _get(self, pos: int, out: np.ndarray) -> None:
        i = pos % self.capacity
        first = min(len(out), self.capacity - i)
        out[:first] = self._buf[i : i + first]
        if first < len(out):
            out[first:] = self._buf[: len(out) - first]
