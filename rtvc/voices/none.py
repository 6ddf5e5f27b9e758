"""`none`: what a daemon plays while no voice is loaded (its start profile did not load): silence, whatever the
voice-on switch says. Not a profile's voice (not in the registry): the state names it with kind "none" and no
profile, and any `voices.select` replaces it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class NoParams:
    pass


class NoVoice:
    kind: ClassVar[str] = "none"
    Params: ClassVar[type] = NoParams

    seamless: ClassVar[bool] = True  # (nothing to align)
    dry: ClassVar[bool] = False  # voice off plays no dry microphone either: the user chose none of it

    def __init__(self, samplerate: int, label: str):
        self.label = label
        self.samplerate = samplerate
        self.latency = 0

    def context_for(self, tail: int) -> int:
        return tail

    def convert(self, window: np.ndarray, tail: int, params: NoParams) -> np.ndarray:
        return np.zeros(tail, dtype=np.float32)

    def reset(self) -> None:
        pass
