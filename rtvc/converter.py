"""The streaming converter: exactly one block out for each block in, through a voice.

It keeps the rolling window (the voice's left context + the new block) and hands the voice its window
each block. Parameter changes are swapped in at block boundaries. Its latency is the voice's own
algorithmic delay; the engine adds the block and the prefill around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtvc.errors import ConfigError


class StreamingConverter:
    def __init__(self, voice: Any, params: Any, samplerate: int, block: int):
        if voice.samplerate != samplerate:
            raise ConfigError(
                f"voice '{voice.kind}' runs at {voice.samplerate} Hz, the stream at {samplerate} Hz",
                f"set audio.samplerate = {voice.samplerate}",
            )
        self.voice = voice
        self.samplerate = samplerate
        self.block = block
        self._params = params
        self._window = np.zeros(voice.context + block, dtype=np.float32)  # (context + block,)

    @property
    def latency(self) -> int:
        """Frames of delay the converter adds beyond the block itself."""
        return self.voice.latency

    @property
    def params(self) -> Any:
        return self._params

    def set_params(self, params: Any) -> None:
        """Any thread: takes effect at the next block boundary (one reference store)."""
        self._params = params

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """block: (self.block,) float32 -> (self.block,) float32."""
        w, n = self._window, self.block
        if len(w) > n:
            w[:-n] = w[n:]
        w[-n:] = block
        return self.voice.convert(w, n, self._params)

    def reset(self) -> None:
        self._window[:] = 0
        self.voice.reset()
