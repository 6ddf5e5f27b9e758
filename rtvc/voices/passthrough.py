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

    def __init__(self, samplerate: int):
        self.label = "passthrough (no voice change)"
        self.samplerate = samplerate
        self.latency = 0

    def context_for(self, tail: int) -> int:
        return tail

    def convert(self, window: np.ndarray, tail: int, params: PassthroughParams) -> np.ndarray:
        out = window[len(window) - tail :]
        if params.gain_db == 0.0:
            return out
        return out * np.float32(10.0 ** (params.gain_db / 20.0))

    def reset(self) -> None:
        pass
