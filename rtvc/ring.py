"""Single-producer/single-consumer ring of audio frames, lock-free, preallocated, in C (rtvc/_rt.c).

The device callbacks run in C on one side of each ring (so they never wait for Python's GIL); the worker
drives the other side from Python through the methods here. The semantics, which tests/test_ring.py checks
against a model:

Positions are monotonic frame counts: the producer alone advances `write_pos`, the consumer alone advances
`read_pos`. Each side copies its samples first and publishes its position after, so the other side never
sees a position ahead of the data.

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
the end of its write (`claim`) before copying, as a seqlock does.

Nothing is smoothed over: overrun, underrun and late frames are counted.
"""

from __future__ import annotations

import ctypes

import numpy as np

from rtvc import native

_lib = native.lib


class RingFields(ctypes.Structure):
    """rtvc_ring in rtvc/_rt.c (change both together)."""

    _fields_ = [
        ("write_pos", ctypes.c_int64),
        ("read_pos", ctypes.c_int64),
        ("claim", ctypes.c_int64),
        ("capacity", ctypes.c_int64),
        ("late_frames", ctypes.c_int64),
        ("overrun_frames", ctypes.c_int64),
        ("overrun_events", ctypes.c_int64),
        ("underrun_frames", ctypes.c_int64),
        ("underrun_events", ctypes.c_int64),
        ("fade", ctypes.c_int64),
        ("buf", ctypes.c_void_p),
    ]


class SpscRing:
    """A ring of float32 frames. `SpscRing(capacity)` owns its ring; `SpscRing.inside(address, owner)` is one of
    an engine core's rings (rtvc.engine), kept alive by `owner`."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1 frame, got {capacity}")
        ptr = _lib.rtvc_ring_new(capacity)
        if not ptr:
            raise MemoryError(f"no memory for a ring of {capacity} frames")
        self._init(ptr, None)

    @classmethod
    def inside(cls, ptr: int, owner: object) -> SpscRing:
        ring = cls.__new__(cls)
        ring._init(ptr, owner)
        return ring

    def _init(self, ptr: int, owner: object) -> None:
        self._ptr = ptr
        self._owner = owner  # None: this object owns the ring and frees it
        self._f = RingFields.from_address(ptr)
        self.capacity = self._f.capacity

    def __del__(self) -> None:
        if getattr(self, "_owner", 0) is None and self._ptr:
            _lib.rtvc_ring_free(self._ptr)
            self._ptr = 0

    # -- positions and counters (plain reads of the fields the C side keeps) --------------------
    @property
    def write_pos(self) -> int:
        return self._f.write_pos

    @property
    def read_pos(self) -> int:
        return self._f.read_pos

    @property
    def late_frames(self) -> int:
        """Producer: dropped, the consumer had already played their slot."""
        return self._f.late_frames

    @property
    def overrun_frames(self) -> int:
        """Consumer: overwritten before it read them (it had fallen a ring behind), skipped."""
        return self._f.overrun_frames

    @property
    def overrun_events(self) -> int:
        return self._f.overrun_events

    @property
    def underrun_frames(self) -> int:
        """Consumer: played as zeros, not there in time."""
        return self._f.underrun_frames

    @property
    def underrun_events(self) -> int:
        return self._f.underrun_events

    def restart(self) -> None:
        """Both sides idle (a device switch, a start): positions back to 0; the counters stay."""
        _lib.rtvc_ring_restart(self._ptr)

    # -- either side ----------------------------------------------------------------------------
    def available(self) -> int:
        """Frames the consumer can read now (not counting those overwritten)."""
        return _lib.rtvc_ring_available(self._ptr)

    def overwritten(self) -> int:
        """Frames the producer overwrote before the consumer read them, not yet skipped by the consumer."""
        return _lib.rtvc_ring_overwritten(self._ptr)

    def free(self) -> int:
        """Frames the producer can write without overwriting unread ones."""
        return self.capacity - self.available()

    # -- producer -------------------------------------------------------------------------------
    def write(self, frames: np.ndarray) -> int:
        """Append `frames`; returns how many the consumer can still get. Frames whose slot the consumer has
        already played are dropped as late; past a full ring the oldest unread frames are overwritten."""
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        if frames.ndim != 1:
            raise ValueError(f"a ring takes one channel of frames, got shape {frames.shape}")
        return _lib.rtvc_ring_write(self._ptr, native.address(frames, "frames"), len(frames), 1)

    def advance(self, n: int) -> None:
        """Move on n frames with nothing to write (the worker dropped input that far behind). Slots the
        consumer has not played yet get silence; those it has were played as an underrun already."""
        _lib.rtvc_ring_advance(self._ptr, n)

    # -- consumer -------------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Copy up to len(out) frames into `out`; returns how many. Never waits, never zero-fills.
        Frames that were overwritten before they were read are skipped and counted."""
        _writable(out)
        return _lib.rtvc_ring_read_into(self._ptr, native.address(out, "out"), len(out))

    def read_timeline(self, out: np.ndarray) -> int:
        """Fill all of `out` and advance by len(out); frames not yet written become zeros (underrun), and so
        does a copy the producer overwrote meanwhile (this consumer had fallen a ring behind)."""
        _writable(out)
        return _lib.rtvc_ring_read_timeline(self._ptr, native.address(out, "out"), len(out))

    def skip_overwritten(self) -> int:
        """Consumer: step over frames the producer overwrote before they were read; returns how many."""
        return _lib.rtvc_ring_skip_overwritten(self._ptr)

    def skip_to(self, pos: int, count: bool = False) -> int:
        """Consumer: drop what is readable before `pos` unread (never past what was written), counted as overrun
        if `count`; returns how many frames it dropped besides those overwritten."""
        return _lib.rtvc_ring_skip_to(self._ptr, pos, int(count))


def _writable(out: np.ndarray) -> None:
    if out.ndim != 1 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"read into a writable, contiguous 1-D array, got shape {out.shape}")
