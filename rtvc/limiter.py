"""The output limiter: no sample leaves rtvc beyond full scale, and none is cut flat.

A voice's gain raised for a quiet microphone (gain_db goes to +24), a pitch shift that piles a voice's peaks
up (+4 dB at extreme settings), a shout: samples beyond 1.0 were cut flat where they were played (a sound
card's converter, a call's int16), a harsh crackle on every loud syllable, or passed on in float to a program
that clipped them later. The limiter lowers the gain just enough, smoothly, and gives it back slowly:

- Nothing changes below full scale: a block whose samples are all within it, with no gain still to give
  back, passes untouched (the same array; a comparison per block).
- No added latency: it looks ahead only within the block, which is converted whole before any of it plays.
  The gain goes down towards a peak at ATTACK_DB_MS (a 6 dB reduction starts 1 ms before the peak) where the
  block holds that much before the peak; a peak nearer the block's start than that gets what is left of the
  ramp at once from the block's first sample (the ramp would have had to start in the block that played).
- It gives the gain back at RELEASE_DB_S, linear in dB (6 dB in 150 ms), from the last block's end.
- The gain at a peak is exactly what brings it to full scale (a final clip catches float rounding only).

In dB per sample the gain is the lower envelope of cones around each sample's need (0 where a sample is
within full scale): slope ATTACK before it, RELEASE after it, and the gain carried from the block before;
two running minima over the block, no loop in Python.
"""

from __future__ import annotations

import numpy as np

CEILING = 1.0  # full scale
ATTACK_DB_MS = 6.0  # how fast the gain goes down towards a peak
RELEASE_DB_S = 40.0  # how fast it comes back after one
# the most it takes off: a sample far beyond any voice (a model's glitch of 1e6, 1e30) ducked the output for 3 to
# 19 s; beyond this it is cut at full scale instead (the limit is reached from +40 dBFS: +24 dB of gain on a
# full-scale input is within it)
MAX_REDUCTION_DB = 40.0


class Limiter:
    def __init__(self, samplerate: int, block: int):
        self.on = True
        self._attack = ATTACK_DB_MS * 1000.0 / samplerate  # dB per sample
        self._release = RELEASE_DB_S / samplerate
        self._j = np.arange(block, dtype=np.float64)
        self._gain_db = 0.0  # at the end of the last block (<= 0)
        self.reduction_db = 0.0  # the most it took off in the latest block (<= 0), for the meters
        self.limited_blocks = 0  # blocks with a sample beyond full scale, in total (not those of the release only)

    def reset(self) -> None:
        self._gain_db, self.reduction_db = 0.0, 0.0

    def process(self, y: np.ndarray) -> np.ndarray:
        """y: (block,) float32, the block about to play: itself where nothing is beyond full scale and no gain is
        to be given back, else a new array."""
        if not self.on or not len(y):
            self._gain_db = self.reduction_db = 0.0
            return y
        a = np.abs(y)
        if self._gain_db == 0.0 and a.max() <= CEILING:
            self.reduction_db = 0.0
            return y
        n = len(y)
        j = self._j[:n] if n <= len(self._j) else np.arange(n, dtype=np.float64)
        need = np.zeros(n)
        over = a > CEILING
        big = np.minimum(a[over].astype(np.float64), 1e300)  # (an infinity: the most it takes off, as any such)
        need[over] = np.maximum(20.0 * np.log10(CEILING / big), -MAX_REDUCTION_DB)
        # attack: g_a[i] = min over j >= i of need[j] + attack * (j - i)
        g = np.minimum.accumulate((need + self._attack * j)[::-1])[::-1] - self._attack * j
        # release: g[i] = min over j <= i of g_a[j] + release * (i - j), and the last block's gain (at j = -1)
        g = np.minimum(np.minimum.accumulate(g - self._release * j), self._gain_db + self._release) + self._release * j
        g = np.minimum(g, 0.0)
        self._gain_db = float(g[-1])
        if self._gain_db > -1e-4:  # (back within a ten-thousandth of a dB: done)
            self._gain_db = 0.0
        self.reduction_db = float(g.min())
        if over.any():
            self.limited_blocks += 1
        out = y * (10.0 ** (g / 20.0)).astype(np.float32)
        return np.clip(out, -CEILING, CEILING, out=out)
