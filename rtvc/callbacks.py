"""The engine's device side: the callbacks, their rings, counters and the worker's doorbell, kept in C.

`DeviceSide` owns one rtvc_engine of rtvc/_rt.c. A PortAudio stream calls its C callback directly
(`stream_fields`); a virtual device or a test calls `duplex`/`input`/`play` from Python, which run the same
C code. Either way no callback waits for Python's GIL: on a busy 2-core machine a Python callback did (the
thread holding the GIL preempted, or between two numpy calls) and JACK counted xruns that its C clients on
the same server never had.

The worker reads and writes the other side of the rings (rtvc.ring.SpscRing) and waits on `wait()`, which
gives the GIL up.
"""

from __future__ import annotations

import ctypes

import numpy as np

from rtvc import native
from rtvc.errors import RtvcError
from rtvc.priority import CALLBACK_PRIORITY, Sched, sched_of
from rtvc.ring import RingFields, SpscRing

_lib = native.lib
FLAG_NAMES = ("input_underflow", "input_overflow", "output_underflow", "output_overflow", "priming_output")
MAIN, OUTPUT, MONITOR = 0, 1, 2  # the counters of: the input (or duplex) stream, a separate output, the monitor
DUPLEX, INPUT, OUTPUT_STREAM, MONITOR_STREAM = 0, 1, 2, 3  # rtvc_stream.kind


class _CounterFields(ctypes.Structure):
    """rtvc_counters in rtvc/_rt.c (change both together)."""

    _fields_ = [
        ("callbacks", ctypes.c_int64),
        ("last_callback_ns", ctypes.c_int64),
        ("flags", ctypes.c_int64 * 5),
        ("xrun_callbacks", ctypes.c_int64),
        ("ours", ctypes.c_int32),
        ("sched_for", ctypes.c_int32),
        ("raised", ctypes.c_int32),
        ("policy", ctypes.c_int32),
        ("priority", ctypes.c_int32),
        ("slice_us", ctypes.c_int32),
        ("tid", ctypes.c_int32),
    ]


class _CoreFields(ctypes.Structure):
    """rtvc_engine in rtvc/_rt.c, up to its doorbell (change both together)."""

    _fields_ = [
        ("rings", RingFields * 3),
        ("counters", _CounterFields * 3),
        ("live", ctypes.c_int32),
        ("want", ctypes.c_int32),
        ("callback_priority", ctypes.c_int32),
        ("host_period", ctypes.c_int32),
        ("block", ctypes.c_int64),
        ("prefill", ctypes.c_int64),
        ("lag_limit", ctypes.c_int64),
        ("main_period", ctypes.c_int64),
    ]


class StreamFields(ctypes.Structure):
    """rtvc_stream in rtvc/_rt.c: one PortAudio stream's userData."""

    _fields_ = [
        ("engine", ctypes.c_void_p),
        ("kind", ctypes.c_int32),
        ("in_channels", ctypes.c_int32),
        ("in_channel", ctypes.c_int32),
        ("out_channels", ctypes.c_int32),
    ]


ABI = 5  # RTVC_ABI in rtvc/_rt.c


def _check_layout() -> None:
    """The structs above against the library that loaded: one built from an older rtvc/_rt.c would be read at
    the wrong offsets."""
    got = (ctypes.c_int64 * 16)()
    n = _lib.rtvc_layout(ctypes.addressof(got), len(got))
    want = [
        ABI,
        ctypes.sizeof(RingFields), RingFields.buf.offset,
        ctypes.sizeof(_CounterFields), _CounterFields.tid.offset,
        _CoreFields.counters.offset, _CoreFields.live.offset, _CoreFields.lag_limit.offset, ctypes.sizeof(_CoreFields),
        ctypes.sizeof(StreamFields), StreamFields.out_channels.offset,
    ]  # fmt: skip
    if list(got[:n]) != want:
        raise RtvcError(
            f"rtvc's audio core {native.PATH} does not match this rtvc (its layout {list(got[:n])}, expected {want})",
            "rebuild it with `pip install -e .` in the checkout",
        )


_check_layout()


class _Core:
    """The engine's C memory (an rtvc_engine), freed with the last reference to this object. It references
    nothing back, so no cycle keeps it for the garbage collector (which gc.freeze() at the engine's start
    would then never free)."""

    def __init__(self, capacity: int):
        self.ptr = _lib.rtvc_engine_new(capacity)
        if not self.ptr:
            raise MemoryError(f"no memory for the engine's rings of {capacity} frames")

    def __del__(self) -> None:
        if getattr(self, "ptr", 0) and _lib is not None:
            _lib.rtvc_engine_free(self.ptr)
            self.ptr = 0


class StreamCounters:
    """One stream's counters, written by its callback thread in C; `period` is the engine's own note."""

    def __init__(self, fields: _CounterFields, core: _Core):
        self._f = fields
        self._core = core  # (the memory `fields` points into)
        self.period = 0  # frames per callback, as planned (prepare)

    @property
    def callbacks(self) -> int:
        return self._f.callbacks

    @callbacks.setter
    def callbacks(self, n: int) -> None:  # (between streams only: the callback thread is its writer)
        self._f.callbacks = n

    @property
    def last_callback(self) -> float:
        """native.now() of the latest callback, in seconds."""
        return self._f.last_callback_ns * 1e-9

    @last_callback.setter
    def last_callback(self, t: float) -> None:
        self._f.last_callback_ns = round(t * 1e9)

    @property
    def pa_flags(self) -> dict[str, int]:
        return dict(zip(FLAG_NAMES, self._f.flags, strict=True))

    @property
    def pa_xrun_callbacks(self) -> int:
        """Callbacks with any xrun flag: one xrun of a duplex stream sets an input and an output flag at once."""
        return self._f.xrun_callbacks

    @property
    def ours(self) -> bool:
        """The stream's callback thread is ours to schedule (not an audio server's: JACK)."""
        return bool(self._f.ours)

    @ours.setter
    def ours(self, mine: bool) -> None:
        self._f.ours = int(mine)

    @property
    def slice_ms(self) -> float:
        """On the normal scheduler: the time slice the callback thread asked for and got (rtvc/_rt.c,
        ask_short_slice), as the kernel reports it; 0.0 where it reports none (real-time, other kernels)."""
        return self._f.slice_us / 1e3

    @property
    def tid(self) -> int:
        """The callback thread's id (Linux), learnt at its first call; 0 before, or where it is not known."""
        return self._f.tid

    def learnt(self, want: bool) -> Sched | None:
        """The callback thread's scheduling, once it has applied the real-time wish `want` (None before, or where
        the OS gives no way to ask)."""
        if self._f.sched_for != int(want):
            return None
        return sched_of(self._f.policy, self._f.priority)

    def forget(self) -> None:
        """New streams (a device switch) call back on new threads: learn their scheduling anew at the next call.
        (PortAudio's PulseAudio host API runs every stream on one mainloop thread: one we raised stays raised if
        the next device is JACK's.)"""
        self._f.raised = 0
        self._f.policy = -1
        self._f.slice_us = 0
        self._f.tid = 0
        self._f.sched_for = -1


class DeviceSide:
    def __init__(self, capacity: int, block: int):
        self._core = _Core(capacity)  # (every object pointing into its memory holds it: rings, counters, streams)
        self._ptr = self._core.ptr
        self._f = _CoreFields.from_address(self._ptr)
        self._f.callback_priority = CALLBACK_PRIORITY
        size = ctypes.sizeof(RingFields)
        rings = (SpscRing.inside(self._ptr + k * size, self._core) for k in range(3))
        self.in_ring, self.out_ring, self.mon_ring = rings
        self.counters = tuple(StreamCounters(self._f.counters[k], self._core) for k in range(3))
        self.plan(block, 0, 0)

    # -- set by the engine (any thread) -----------------------------------------------------------
    def plan(self, block: int, prefill: int, lag_limit: int) -> None:
        _lib.rtvc_engine_plan(self._ptr, block, prefill, lag_limit)

    def phase(self, which: int, frames: int) -> None:
        """Frames the output-only stream `which` (OUTPUT, MONITOR) plays behind the input's clock (rtvc/_rt.c)."""
        _lib.rtvc_engine_phase(self._ptr, which, frames)

    @property
    def live(self) -> bool:
        """The callbacks carry audio (set last by prepare, cleared first by suspend)."""
        return bool(self._f.live)

    @live.setter
    def live(self, on: bool) -> None:
        _lib.rtvc_engine_set_live(self._ptr, int(on))

    @property
    def want(self) -> bool:
        """The real-time wish the callback threads apply at their next call."""
        return bool(self._f.want)

    @want.setter
    def want(self, on: bool) -> None:
        self._f.want = int(on)

    @property
    def host_period(self) -> int:
        """Frames of the latest callback while not live (the host chose the period); 0: none yet."""
        return self._f.host_period

    @host_period.setter
    def host_period(self, frames: int) -> None:
        self._f.host_period = frames

    def main_period(self) -> tuple[int, int]:
        """The main stream's latest live callback size in frames, and how many live callbacks in a row had it
        (0, 0 before the first). Reset by `plan`."""
        v = self._f.main_period  # (one word: the size and its count read together)
        return v >> 32, v & 0xFFFFFFFF

    # -- the doorbell -------------------------------------------------------------------------------
    def ring(self) -> None:
        """Wake the worker (never blocks; a bell already rung stays rung)."""
        _lib.rtvc_engine_ring(self._ptr)

    def wait(self, timeout: float) -> bool:
        """The worker: block, without the GIL, until rung or `timeout` seconds; clears the bell."""
        return bool(native.wait_lib.rtvc_engine_wait(self._ptr, timeout))

    # -- the callbacks, called from Python (a virtual device, tests) --------------------------------
    def duplex(self, indata: np.ndarray, outdata: np.ndarray, frames: int, flags) -> None:
        """indata: (frames,) one channel; outdata: (frames, channels), C-contiguous float32."""
        _check_out(outdata, frames)
        _check_in(indata, frames)
        _lib.rtvc_duplex(
            self._ptr, native.address(indata, "indata"), native.stride(indata, "indata"),
            native.address(outdata, "outdata"), outdata.shape[1], frames, flag_bits(flags),
        )  # fmt: skip

    def input(self, indata: np.ndarray, frames: int, flags) -> None:
        _check_in(indata, frames)
        _lib.rtvc_input(
            self._ptr, native.address(indata, "indata"), native.stride(indata, "indata"), frames, flag_bits(flags)
        )

    def play(self, which: int, outdata: np.ndarray, frames: int, flags) -> None:
        """which: OUTPUT or MONITOR."""
        _check_out(outdata, frames)
        _lib.rtvc_play(self._ptr, which, native.address(outdata, "outdata"), outdata.shape[1], frames, flag_bits(flags))

    # -- PortAudio streams call the C callback directly ---------------------------------------------
    def stream_fields(self, kind: int, in_channels: int = 0, in_channel: int = 0, out_channels: int = 0):
        """The userData of one PortAudio stream opened with native.PA_CALLBACK; keep it alive as long as the
        stream (it holds the engine's memory, _Core, which must outlive every stream pointing at it)."""
        s = StreamFields(self._ptr, kind, in_channels, in_channel, out_channels)
        s._core = self._core  # (the engine's memory must outlive every stream pointing at it)
        return s


def flag_bits(flags) -> int:
    """PortAudio's callback flags (sounddevice's CallbackFlags, or any object with its attributes) as bits."""
    if not flags:
        return 0
    return sum(1 << k for k, name in enumerate(FLAG_NAMES) if getattr(flags, name, False))


def _check_in(indata: np.ndarray, frames: int) -> None:
    if indata.shape[0] < frames:
        raise ValueError(f"indata has {indata.shape[0]} frames, the callback says {frames}")


def _check_out(outdata: np.ndarray, frames: int) -> None:
    if outdata.ndim != 2 or not outdata.flags.c_contiguous or outdata.shape[0] < frames:
        raise ValueError(f"outdata must be (frames, channels), C-contiguous, got {outdata.shape}")
