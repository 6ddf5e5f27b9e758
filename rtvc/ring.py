"""Single-producer/single-consumer ring of audio frames, lock-free, preallocated.

Positions are monotonic frame counts: the producer alone advances `write_pos`, the consumer alone advances
`read_pos`. Each side copies its samples first and publishes its position after, so the other side never
sees a position ahead of the data (CPython's GIL orders the plain attribute stores).

Two ways to consume:
- `read(out)` takes what is there (the worker reading whole blocks);
- `read_timeline(out)` always advances by len(out): frames that have not arrived are played as zeros
  (an underrun) and, when they arrive later, are dropped as late. The output ring uses it so that an
  underrun never shifts the timeline: the latency stays what was declared.

When the consumer falls behind by more than the ring holds, a ring made with `keep_newest` (the input ring)
keeps the newest frames: the producer overwrites the oldest unread ones and the consumer skips them, counted
as overrun, so positions stay the clock's (a plain ring refuses the newest frames, and every later position
would then name older audio than the clock says). The consumer checks after copying that the producer did not
overwrite what it copied (a seqlock: the producer publishes the end of its write before copying).

Nothing is smoothed over: overrun, underrun and late frames are counted.
"""

from __future__ import annotations

import numpy as np


class SpscRing:
    def __init__(self, capacity: int, dtype: np.dtype | type = np.float32, keep_newest: bool = False):
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1 frame, got {capacity}")
        self.capacity = capacity
        self.keep_newest = keep_newest
        self._buf = np.zeros(capacity, dtype=dtype)
        self.write_pos = 0  # frames published by the producer (timeline position)
        self.read_pos = 0  # frames consumed by the consumer (timeline position)
        self._claim = 0  # the end of the write under way: positions below _claim - capacity may be overwritten
        # counters: producer-side, except overruns of a keep_newest ring (the consumer finds them)
        self.overrun_frames = 0  # dropped: the ring was full
        self.overrun_events = 0
        self.late_frames = 0  # dropped: the consumer had already played their slot
        # consumer-side counters
        self.underrun_frames = 0  # played as zeros: not there in time
        self.underrun_events = 0

    def restart(self) -> None:
        """Both sides idle (a device switch, a start): positions back to 0; the counters stay."""
        self.read_pos = self.write_pos = self._claim = 0

    # -- either side ----------------------------------------------------------------------------
    def available(self) -> int:
        """Frames the consumer can read now (a keep_newest ring: those not overwritten)."""
        return max(0, self.write_pos - max(self.read_pos, self._claim - self.capacity))

    def overwritten(self) -> int:
        """Frames the producer overwrote before the consumer read them, not yet skipped (keep_newest)."""
        return max(0, self._claim - self.capacity - self.read_pos)

    def free(self) -> int:
        """Frames the producer can write now."""
        return self.capacity - self.available()

    # -- producer -------------------------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Append `frames`; returns how many were kept. Late and overflowing frames are counted.
        A keep_newest ring keeps them all, overwriting the oldest unread frames if it must."""
        n = len(frames)
        if self.keep_newest:
            w = self.write_pos
            x = frames[n - self.capacity :] if n > self.capacity else frames
            self._claim = w + n  # published before the copy: the consumer checks it after its own
            self._put(w + n - len(x), x)
            self.write_pos = w + n
            return n
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
            self._claim = w + skip + keep
            self._put(w + skip, frames[skip : skip + keep])
        self.write_pos = w + skip + max(keep, 0)
        return max(keep, 0)

    def advance(self, n: int) -> None:
        """Move on n frames with nothing to write (the worker dropped input that far behind). Slots the
        consumer has not played yet get silence; those it has were played as an underrun already."""
        w, r = self.write_pos, self.read_pos
        start = max(w, r)
        zeros = min(w + n - start, r + self.capacity - start)  # (never more: the output follows the input)
        if zeros > 0:
            self._claim = start + zeros
            self._zero(start, zeros)
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
        Frames that were overwritten before they were read are skipped and counted (keep_newest)."""
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

    def skip_overwritten(self) -> int:
        """Consumer: step over frames the producer overwrote before they were read; returns how many."""
        lost = self.overwritten()
        if lost:
            self.read_pos += lost
            self.overrun_frames += lost
            self.overrun_events += 1
        return lost

    def discard(self, n: int) -> int:
        """Consumer: drop up to n readable frames unread; returns how many."""
        self.skip_overwritten()
        n = max(0, min(n, self.write_pos - self.read_pos))
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
