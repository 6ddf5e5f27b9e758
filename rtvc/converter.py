"""The streaming converter: exactly one block out for each block in, through a voice.

Each block it
1. appends the block to a rolling window (the voice's left context + the block);
2. asks the voice for the converted tail only: block + crossfade + search frames;
3. finds where that tail continues the previous output best (SOLA: normalised cross-correlation over
   the search window) and crossfades the pending overlap into it (equal-power for any correlation);
4. returns `block` frames and keeps the next `crossfade` frames as the pending overlap.

Its latency, beyond the block itself, is crossfade + search/2 (the nominal SOLA offset) + the voice's
own lookahead. A parameter change takes effect at a block boundary: the new block is rendered with the
new settings only and joined to the previous one (rendered with the old) by the same SOLA crossfade that
joins every block, so it costs no more than any block (a block rendered twice and blended, as before, doubled
the worker's time whenever a slider moved: xruns when a control surface sent 20 changes a second). Bypass is
ramped over a block (its dry side costs nothing), and so is a new voice (the engine's swap).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rtvc.errors import ConfigError
from rtvc.resample import StreamResampler, resample_block
from rtvc.sola import best_offset, crossfade, fade_shape, local_correlation


@dataclass(frozen=True)
class StreamShape:
    """Fixed per stream configuration, in frames at the device rate."""

    samplerate: int
    block: int
    crossfade: int
    search: int
    context: int = 0  # at least this much left context (the voice may need more)

    @property
    def tail(self) -> int:
        return self.block + self.crossfade + self.search

    def validate(self) -> None:
        ms = 1000.0 / self.samplerate
        if self.crossfade > self.block:
            raise ConfigError(
                f"stream.crossfade_ms ({self.crossfade * ms:g} ms) is longer than the block ({self.block * ms:g} ms)",
                "make the crossfade at most one block",
            )
        if self.block < 1 or self.crossfade < 0 or self.search < 0:
            raise ConfigError("the block must be >= 1 frame; crossfade and search >= 0", "check [stream]")


class StreamingConverter:
    def __init__(self, voice: Any, params: Any, shape: StreamShape):
        shape.validate()
        if getattr(voice, "seamless", False):
            # consecutive tails of a seamless voice (passthrough) continue each other exactly:
            # nothing to align or crossfade, so no SOLA delay either
            shape = replace(shape, crossfade=0, search=0)
        out_rate = getattr(voice, "out_samplerate", voice.samplerate)
        shape = replace(shape, search=_search_for(voice, params, shape))
        self.voice = voice
        self._rates = _Rates(shape, voice.samplerate, out_rate, getattr(voice, "frame_ms", 0.0))
        self._advance = getattr(voice, "advance", None)
        self._moved = getattr(voice, "moved", None)  # (told how far the window moved: a voice on the stream's time)
        # (told up to which tail frame each block was played, where its tail is at the device's rate: the pitch
        # voice's replay guard)
        same_rate = voice.samplerate == out_rate == shape.samplerate
        self._joined = getattr(voice, "joined", None) if same_rate else None
        if hasattr(voice, "set_origin"):
            # a voice that works on a fixed frame grid puts the stream's time zero where it arrives
            voice.set_origin(self._rates.delay_v)
        self.shape = shape
        self.block = shape.block
        self.samplerate = shape.samplerate
        self._nominal = shape.search // 2
        # output frame j of a block is tail[k + j]: it lags its input by crossfade + search - k frames (for
        # an odd search, one more than crossfade + search // 2)
        self._sola_delay = shape.crossfade + shape.search - self._nominal
        self._params = params
        self._pending: Any = None  # params that take over at the next block
        self.bypass = False
        self._bypass_now = False
        self._dry = getattr(voice, "dry", True)  # (bypass plays the microphone as it is; not for NoVoice)
        rt = self._rates
        context = max(rt.to_voice(shape.context), voice.context_for(rt.tail_v + rt.pad_v))
        self._window = np.zeros(context + rt.block_v, dtype=np.float32)  # (context + block,) at the voice's rate
        prepare = getattr(voice, "prepare_stream", None)
        if prepare is not None:  # shapes are fixed from here on: a voice may capture graphs or load engines now
            prepare(len(self._window), rt.block_v)
        self._overlap = np.zeros(shape.crossfade, dtype=np.float32)  # pending output, not yet played
        # all the output rendered past the block played (the overlap first): what a voice switch fades out of
        # without rendering this voice again (`ahead`)
        self._ahead = np.zeros(0, dtype=np.float32)
        self.cost_s = 0.0  # its block time, a decaying peak (each block's, or 0.95 of the one before)
        self._shape = fade_shape(shape.crossfade)
        self._ramp = ((np.arange(shape.block) + 0.5) / shape.block).astype(np.float32)

    def wants_wider_search(self, params: Any) -> bool:
        """Whether a converter built anew at `params` would search wider than this one (a pitch voice moved lower
        than it was loaded at: PitchVoice.least_search)."""
        return _search_for(self.voice, params, self.shape) > self.shape.search

    @property
    def latency(self) -> int:
        """Frames of delay the converter adds beyond the block itself."""
        rt = self._rates
        return rt.delay + self._sola_delay + round(self.voice.latency * rt.device / rt.voice)

    @property
    def params(self) -> Any:
        return self._pending if self._pending is not None else self._params

    def set_params(self, params: Any) -> None:
        """Any thread: in effect from the next block, joined by its crossfade (one reference store)."""
        self._pending = params

    def _render(self, params: Any, bypass: bool) -> np.ndarray:
        """The tail at the device rate: (block + crossfade + search,)."""
        rt = self._rates
        n = rt.tail_v + rt.pad_v
        if bypass and self._dry:
            tail_o, rate = self._window[-n:], rt.voice
        else:
            tail_o, rate = self.voice.convert(self._window, n, params), rt.out
        if rate == rt.device:
            return tail_o
        # back to the device rate; the left pad keeps the filter's start-up out of the tail
        return resample_block(tail_o, rate, rt.device, self.shape.tail + rt.pad)[rt.pad :]

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """block: (block,) float32 -> (block,) float32."""
        t0 = time.perf_counter()
        out = self._process(block)
        self.cost_s = max(time.perf_counter() - t0, 0.95 * self.cost_s)
        return out

    @property
    def ahead(self) -> np.ndarray:
        """The output this converter rendered past the block it played last (crossfade + search - its SOLA offset
        frames; none for passthrough): how it would go on, at no cost."""
        return self._ahead

    def _process(self, block: np.ndarray) -> np.ndarray:
        n, x = self.block, self.shape.crossfade
        new = block if self._rates.input is None else self._rates.input.process(block)
        w, nv = self._window, len(new)
        if len(w) > nv:
            w[:-nv] = w[nv:]
        w[-nv:] = new
        if self._moved is not None:
            self._moved(nv)
        pending, bypass = self._pending, self.bypass
        if self._advance is not None:
            # once per block, whatever is rendered: the voice's own streaming state (features, F0 cache)
            self._advance(w, nv, pending if pending is not None else self._params)
        tail = self._render(pending if pending is not None else self._params, bypass)
        k, rho = best_offset(self._overlap, tail, self.shape.search, self._nominal)
        out = np.array(tail[k : k + n], dtype=np.float32)
        if bypass != self._bypass_now:
            # the voice into the dry signal or back over the block: equal-power for their correlation (two pitches
            # are uncorrelated: linearly, -3 dB half-way; voice on/off dipped 2-4 dB over 10 ms)
            old = self._render(self._params, self._bypass_now)[k : k + n]
            out = crossfade(old, out, self._ramp, local_correlation(old, out, self.samplerate))
            self._bypass_now = bypass
        if pending is not None:
            self._params = pending
            self._pending = None if self._pending is pending else self._pending
        if x:
            out[:x] = crossfade(self._overlap, out[:x], self._shape, rho)
            self._overlap[:] = tail[k + n : k + n + x]
        self._ahead = np.array(tail[k + n :], dtype=np.float32)
        if self._joined is not None and not bypass:  # (after every render of this block: the old voice's, above, too)
            self._joined(k + n + x)
        return out

    @property
    def history(self) -> int:
        """Device frames of input before its first block that fill this converter's window (whole blocks, and
        one more for the input resampler's start-up): what a voice switch primes it with (`continue_from`)."""
        rt = self._rates
        frames = -(-len(self._window) * rt.device // rt.voice)
        return (-(-frames // self.block) + (rt.input is not None)) * self.block

    def continue_from(self, old: StreamingConverter, history: np.ndarray | None) -> str:
        """Before this converter's first block, as it takes over from `old` (a voice switch). `history`: the
        input before this block at the device rate, whole blocks, oldest first (None: input was dropped, there
        is none to go on). The converter takes it as if it had streamed it (`prime`): a voice that reads back (a
        higher pitch, the dry signal, RVC's content encoder) rendered its first blocks from silence: a click and
        a hole, and RVC's features were off by more than their own size for 0.2 s and settled only as its 1 s
        window filled. It starts bypassed if it is to be (no voice-to-dry ramp in its first block). Returns how
        the engine joins the two in the switch's block:
        - JOINED: this converter took old's pending output (the same crossfade), so its first block is joined to
          what played by its own SOLA crossfade, as a parameter change is;
        - AFTER: old renders its block first and this converter joins to the head of it (`join_after`) by its
          own SOLA crossfade: a voice with a crossfade after one with none (passthrough), whose pending output
          is the block old plays now. Mixed, the two played the sound at delays 7 ms apart: dips of 1-5 dB on
          a voice-like tone, 6 dB on a sine (bench/voice_switch.py);
        - MIXED: the engine crossfades the two blocks: where either side resamples, or the new voice has
          streaming state of its own (RVC), their pending outputs lie at other delays; and to passthrough."""
        self._bypass_now = self.bypass
        if history is None:
            return MIXED
        self.prime(history)
        if self._rates.input is not None or old._rates.input is not None or self._advance is not None:
            return MIXED
        if not self.shape.crossfade:
            return MIXED
        if self.shape.crossfade != old.shape.crossfade:
            return AFTER
        self._overlap[:] = old._overlap
        self._bypass_now = old._bypass_now  # (a change of bypass rides this converter's own ramp)
        return JOINED

    def prime(self, history: np.ndarray) -> None:
        """A fresh converter takes `history` (device rate, whole blocks, oldest first) as the input it streamed
        before its first block: its window, its input resampler's state, the voice's time (the pitch voice's
        filter grid, RVC's frames) all as if it had; what the voice computes from its window (features, filters)
        it computes on its first block. Nothing is rendered."""
        rt, n = self._rates, self.block
        history = history[len(history) % n :][-self.history :]
        if not len(history):
            return
        new = history if rt.input is None else rt.input.prime(history)
        keep = min(len(new), len(self._window))
        self._window[-keep:] = new[-keep:]
        if self._moved is not None:
            self._moved(len(new))
        primed = getattr(self.voice, "primed", None)
        if primed is not None:  # (a voice with streaming state of its own: RVC's time on its frame grid)
            primed(len(new))

    def join_after(self, played: np.ndarray) -> None:
        """AFTER: `played` (block,) is what old plays in the switch's block; this converter's first block fades
        from its head, aligned by SOLA, as from its own pending output."""
        self._overlap[:] = played[: self.shape.crossfade]

    def reset(self) -> None:
        self._window[:] = 0
        self._overlap[:] = 0
        self._ahead = np.zeros(0, dtype=np.float32)
        if self._rates.input is not None:
            self._rates.input.reset()
        self.voice.reset()


def _search_for(voice: Any, params: Any, shape: StreamShape) -> int:
    """The SOLA search a converter of `voice` at `params` runs with: `shape`'s, widened to the voice's least_search
    where it has one (a voice whose output goes deeper than the search spans), in whole steps of its rates; none stays
    none (the user's choice)."""
    least = getattr(voice, "least_search", None)
    if least is None or not shape.search:
        return shape.search
    step = _step(shape.samplerate, voice.samplerate, getattr(voice, "out_samplerate", voice.samplerate))
    return max(shape.search, -(-least(params, shape.samplerate) // step) * step)


def _step(device: int, voice_rate: int, out_rate: int) -> int:
    """Device frames per whole step of both voice rates."""
    return math.lcm(*(device // math.gcd(device, r) for r in (voice_rate, out_rate)))


def _block_step(device: int, step: int, frame_ms: float) -> int:
    """Device frames per whole step of a block that is also whole `frame_ms` frames of the voice's (RVC: 10 ms)."""
    for k in range(1, 1001):  # (10 ms is 220.5 frames at 22.05 kHz: 20 ms is the step there)
        frames = k * frame_ms * device / 1000.0
        if frames == int(frames) and int(frames) % step == 0:
            return int(frames)
    return step  # (no such block: the voice's own check names the rule)


class InputHistory:
    """The last input the engine converted, at the device rate, in whole blocks: a voice switched to is primed with
    it (StreamingConverter.continue_from). A mirrored buffer: every read is one slice, no copy."""

    def __init__(self, frames: int, block: int):
        self.block = block
        self.frames = 0
        self._buf = np.zeros(0, np.float32)
        self._at = 0  # where the next block goes
        self.grow(frames)

    def push(self, block: np.ndarray) -> None:
        n, a = self.frames, self._at
        self._buf[a : a + len(block)] = block
        self._buf[n + a : n + a + len(block)] = block
        self._at = (a + len(block)) % n

    def last(self, frames: int) -> np.ndarray:
        """The newest `frames` (at most all it keeps), oldest first: a view, valid until the next push."""
        end = self._at + self.frames
        return self._buf[end - min(frames, self.frames) : end]

    def clear(self) -> None:
        self._buf[:] = 0

    def grow(self, frames: int) -> None:
        """Keep at least `frames` from now on (what it has is kept)."""
        n = -(-frames // self.block) * self.block
        if n <= self.frames:
            return
        kept = self.last(self.frames).copy()
        self._buf = np.zeros(2 * n, np.float32)
        self._buf[n - len(kept) : n] = kept
        self._buf[2 * n - len(kept) :] = kept
        self.frames, self._at = n, 0


# how a voice switch joins the new converter to the old (StreamingConverter.continue_from)
JOINED, AFTER, MIXED = "joined", "after", "mixed"


class _Rates:
    """Device rate <-> voice rates: the streaming resampler for new audio (to the voice's input rate),
    the lengths at the voice's input rate, and the left pad that keeps the output resampler's start-up
    out of the tail. A voice may produce another rate than it consumes (RVC: 16 kHz in, 40 kHz out)."""

    PAD = 64  # device frames (rounded up to a whole number of voice frames)

    def __init__(self, shape: StreamShape, voice_rate: int, out_rate: int, frame_ms: float = 0.0):
        """`frame_ms`: the voice works in frames of this many ms, so a block must be whole ones (RVC: 10)."""
        self.device, self.voice, self.out = shape.samplerate, voice_rate, out_rate
        # device frames per whole step of both voice rates
        step = _step(shape.samplerate, voice_rate, out_rate)
        block_step = _block_step(shape.samplerate, step, frame_ms) if frame_ms else step
        sizes = (
            ("block", shape.block, block_step),
            ("crossfade", shape.crossfade, step),
            ("search", shape.search, step),
        )
        bad = [(name, frames, q) for name, frames, q in sizes if frames % q]
        if bad:  # all of them in one error: fixing one only to meet the next is a slow way to learn
            ms = 1000.0 * step / shape.samplerate
            now = [f"{name} {frames} frames ({1000.0 * frames / shape.samplerate:.2f} ms)" for name, frames, _ in bad]
            fix = []
            for q in dict.fromkeys(q for _, _, q in bad):  # (the block's step may be coarser than the others')
                fix.append(", ".join(f"stream.{name}_ms = {1000.0 * q * -(-f // q) / shape.samplerate:g}"
                                     for name, f, qq in bad if qq == q)
                           + f" (multiples of {1000.0 * q / shape.samplerate:g} ms)")  # fmt: skip
            step48 = _step(48000, voice_rate, out_rate)
            finer = 1000.0 * step48 / 48000
            # 48 kHz is named where its grid takes every value as set in ms (not a block off the voice's frames)
            quanta48 = {"block": _block_step(48000, step48, frame_ms) if frame_ms else step48}
            fits48 = all(
                round(round(1000.0 * f / shape.samplerate, 1) * 48) % quanta48.get(n, step48) == 0 for n, f, _ in bad
            )
            rule = f"; it works in {frame_ms:g} ms frames" if block_step != step else ""
            raise ConfigError(
                f"stream {', '.join(now)}: not a whole number of the voice's frames ({voice_rate} Hz in, "
                f"{out_rate} Hz out, against the device's {shape.samplerate} Hz: steps of {ms:g} ms{rule})",
                f"set {', '.join(fix)}"
                + (f", or audio.samplerate = 48000 (steps of {finer:g} ms)" if finer < ms and fits48 else ""),
            )
        self.block_v = self.to_voice(shape.block)
        self.tail_v = self.to_voice(shape.tail)
        self.pad = 0 if out_rate == shape.samplerate else -(-self.PAD // step) * step
        self.pad_v = self.to_voice(self.pad)
        self.input = None if voice_rate == shape.samplerate else StreamResampler(shape.samplerate, voice_rate)
        self.delay = 0 if self.input is None else round(self.input.delay)  # device frames
        # the same delay in the voice's input frames (whole for every rate pair: HALF_TAPS slow-side frames)
        self.delay_v = 0 if self.input is None else round(self.input.delay * voice_rate / shape.samplerate)

    def to_voice(self, frames: int) -> int:
        return frames * self.voice // self.device
