"""`passthrough`: no voice change, gain only. The UI labels it as such."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rtvc.settings import in_range, setting


@dataclass(frozen=True)
class PassthroughParams:
    gain_db: float = setting(0.0, "output gain in dB", in_range(-60.0, 24.0))


class PassthroughVoice:
    kind: ClassVar[str] = "passthrough"
    Params: ClassVar[type] = PassthroughParams

    seamless: ClassVar[bool] = True  # consecutive tails continue each other: no SOLA needed

    RAMP_S: ClassVar[float] = 0.005  # a gain change glides over this long (the converter crossfades no tails here)

    def __init__(self, samplerate: int):
        self.label = "passthrough (no voice change)"
        self.samplerate = samplerate
        self.latency = 0
        self._gain: float | None = None  # the gain the last tail ended at (None: none played yet)

    def context_for(self, tail: int) -> int:
        return tail

    def convert(self, window: np.ndarray, tail: int, params: PassthroughParams) -> np.ndarray:
        """The newest `tail` samples times the gain. A new gain glides from the last one over RAMP_S: applied in
        one sample at a block edge, +12 dB was a 0.43 full-scale step on a sine (a click), and a fader's 50 changes
        a second a zipper."""
        out = window[len(window) - tail :]
        gain, was = 10.0 ** (params.gain_db / 20.0), self._gain
        self._gain = gain
        if was is None or was == gain:
            return out if gain == 1.0 else out * np.float32(gain)
        n = min(tail, max(1, round(self.RAMP_S * self.samplerate)))
        curve = np.full(tail, gain, np.float32)
        curve[:n] = was + (gain - was) * np.arange(1, n + 1, dtype=np.float32) / n
        return out * curve

    def reset(self) -> None:
        self._gain = None
