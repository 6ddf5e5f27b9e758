"""`passthrough`: no voice change, gain only. The UI labels it as such."""

from __future__ import annotations

import math
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
        self._ramp = max(1, round(self.RAMP_S * samplerate))
        self._gain: float | None = None  # the gain the last tail ended at (None: none played yet)
        self._target = 1.0  # the gain asked for, which the glide goes to
        self._step = 0.0  # per sample, while it glides

    def context_for(self, tail: int) -> int:
        return tail

    def convert(self, window: np.ndarray, tail: int, params: PassthroughParams) -> np.ndarray:
        """The newest `tail` samples times the gain. A new gain glides from the one playing over RAMP_S, across as
        many blocks as that takes: applied in one sample at a block edge, +12 dB was a 0.43 full-scale step on a
        sine (a click), and a fader's 50 changes a second a zipper."""
        out = window[len(window) - tail :]
        target = 10.0 ** (params.gain_db / 20.0)
        if self._gain is None:  # (the first tail: nothing played to glide from)
            self._gain = self._target = target
        if target != self._target:
            self._target, self._step = target, (target - self._gain) / self._ramp
        if self._gain == self._target:
            return out if target == 1.0 else out * np.float32(target)
        n = min(tail, math.ceil((self._target - self._gain) / self._step - 1e-9))
        curve = np.full(tail, self._target, np.float64)
        curve[:n] = self._gain + self._step * np.arange(1, n + 1)
        curve[:n] = np.minimum(curve[:n], self._target) if self._step > 0 else np.maximum(curve[:n], self._target)
        self._gain = float(curve[-1])
        return out * curve.astype(np.float32)

    def reset(self) -> None:
        self._gain = None
        self._target, self._step = 1.0, 0.0
