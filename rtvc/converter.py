"""The streaming converter: exactly one block out for each block in, through a voice.

Each block it
1. appends the block to a rolling window (the voice's left context + the block);
2. asks the voice for the converted tail only: block + crossfade + search frames;
3. finds where that tail continues the previous output best (SOLA: normalised cross-correlation over
   the search window) and crossfades the pending overlap into it (equal-power for any correlation);
4. returns `block` frames and keeps the next `crossfade` frames as the pending overlap.

Its latency, beyond the block itself, is crossfade + search/2 (the nominal SOLA offset) + the voice's
own lookahead. Parameter changes and bypass are swapped in at a block boundary and ramped over that
block: the block is rendered with the old and the new settings and blended, so no change clicks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rtvc.errors import ConfigError
from rtvc.sola import best_offset, crossfade, fade_shape


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
        if voice.samplerate != shape.samplerate:
            raise ConfigError(
                f"voice '{voice.kind}' runs at {voice.samplerate} Hz, the stream at {shape.samplerate} Hz",
                f"set audio.samplerate = {voice.samplerate}",
            )
        self.voice = voice
        self.shape = shape
        self.block = shape.block
        self.samplerate = shape.samplerate
        self._nominal = shape.search // 2
        self._params = params
        self._pending: Any = None  # params to ramp to at the next block
        self.bypass = False
        self._bypass_now = False
        context = max(shape.context, voice.context_for(shape.tail))
        self._window = np.zeros(context + shape.block, dtype=np.float32)  # (context + block,)
        self._overlap = np.zeros(shape.crossfade, dtype=np.float32)  # pending output, not yet played
        self._shape = fade_shape(shape.crossfade)
        self._ramp = ((np.arange(shape.block) + 0.5) / shape.block).astype(np.float32)
        self.last_offset = self._nominal
        self.last_rho = 1.0

    @property
    def latency(self) -> int:
        """Frames of delay the converter adds beyond the block itself."""
        return self.shape.crossfade + self._nominal + self.voice.latency

    @property
    def params(self) -> Any:
        return self._pending if self._pending is not None else self._params

    def set_params(self, params: Any) -> None:
        """Any thread: ramped in over the next block (one reference store)."""
        self._pending = params

    def _render(self, params: Any, bypass: bool) -> np.ndarray:
        tail = self.shape.tail
        if bypass:
            return self._window[-tail:]
        return self.voice.convert(self._window, tail, params)

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """block: (block,) float32 -> (block,) float32."""
        w, n, x = self._window, self.block, self.shape.crossfade
        if len(w) > n:
            w[:-n] = w[n:]
        w[-n:] = block
        pending, bypass = self._pending, self.bypass
        tail = self._render(pending if pending is not None else self._params, bypass)
        k, rho = best_offset(self._overlap, tail, self.shape.search, self._nominal)
        out = np.array(tail[k : k + n], dtype=np.float32)
        if pending is not None or bypass != self._bypass_now:
            old = self._render(self._params, self._bypass_now)[k : k + n]
            out = old + self._ramp * (out - old)
            self._params = pending if pending is not None else self._params
            self._pending = None if self._pending is pending else self._pending
            self._bypass_now = bypass
        if x:
            out[:x] = crossfade(self._overlap, out[:x], self._shape, rho)
            self._overlap[:] = tail[k + n : k + n + x]
        self.last_offset, self.last_rho = k, rho
        return out

    def reset(self) -> None:
        self._window[:] = 0
        self._overlap[:] = 0
        self.voice.reset()
