"""The RVC synthesizer's noise, indexed by absolute 10 ms frame.

RVC draws fresh noise inside every `infer()` call (the flow's latent noise, the NSF source's additive
noise), so the same audio never converts the same way twice and a streamed conversion cannot equal a
whole-file one. Here the noise of frame t is a pure function of (seed, t): Philox keyed by both. A
streamed block that decodes frames [a, b) uses exactly the noise the whole file uses there, and a
result can be reproduced (and later exported) with the noise as an explicit input.
"""

from __future__ import annotations

import numpy as np


class FrameNoise:
    def __init__(self, seed: int, inter_channels: int, upp: int):
        self.seed = int(seed)
        self.inter = inter_channels
        self.upp = upp
        self._cache: dict[int, np.ndarray] = {}  # frame -> (inter + upp,) standard normal

    def _frame(self, t: int) -> np.ndarray:
        v = self._cache.get(t)
        if v is None:
            # (frames before the stream start are negative: wrapped into the unsigned key)
            gen = np.random.Generator(np.random.Philox(key=np.array([self.seed, t % 2**64], dtype=np.uint64)))
            v = gen.standard_normal(self.inter + self.upp, dtype=np.float32)
            if len(self._cache) > 4096:  # a stream touches each frame a few times, then moves on
                self._cache.clear()
            self._cache[t] = v
        return v

    def frames(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Noise of frames [a, b): flow (inter, b - a) and sine ((b - a) * upp,)."""
        if b <= a:
            return np.zeros((self.inter, 0), np.float32), np.zeros(0, np.float32)
        rows = np.stack([self._frame(t) for t in range(a, b)])  # (T, inter + upp)
        return np.ascontiguousarray(rows[:, : self.inter].T), rows[:, self.inter :].reshape(-1)
