"""The F0 estimator contract and the helpers every estimator shares.

An estimator maps 16 kHz mono audio to one F0 value per 10 ms hop: `(N,) -> (N // 160 + 1,)` Hz, frame t centred
on sample 160·t (the signal is centre-padded at both ends, as RVC's extractors do), 0.0 = unvoiced. RVC's
synthesiser consumes exactly this grid: its content features and its F0 run at 100 frames/s at 16 kHz.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

SR = 16_000  # Hz; every RVC F0 estimator works at this rate
HOP = 160  # samples = 10 ms, one F0 frame

# The 360-bin pitch grid of CREPE, reused unchanged by RMVPE: bin i is 20·i + 1997.379… cents above 10 Hz,
# i.e. 31.7 Hz (bin 0) to 2006 Hz (bin 359).
CENTS_PER_BIN = 20.0
CENTS_BIN0 = 1997.3794084376191
N_BINS = 360
BIN_CENTS = (CENTS_PER_BIN * np.arange(N_BINS) + CENTS_BIN0).astype(np.float64)  # (360,)


@runtime_checkable
class F0Estimator(Protocol):
    name: str
    f0_min: float
    f0_max: float
    lookahead: int  # samples right of a frame's centre that its estimate depends on (see module docstring)

    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        """(N,) float32 at 16 kHz -> (N // 160 + 1,) float32 Hz, 0.0 = unvoiced."""
        ...


def n_frames(n_samples: int) -> int:
    """Frames the contract promises for `n_samples` of audio."""
    return n_samples // HOP + 1


def as_audio(audio16k: np.ndarray) -> np.ndarray:
    """The caller's audio as a contiguous 1-D float32 array; anything else is a programming error."""
    audio = np.asarray(audio16k)
    if audio.ndim != 1:
        raise ValueError(f"F0 estimators take mono audio of shape (N,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"F0 estimators take float audio in [-1, 1], got dtype {audio.dtype}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def keep_range(f0: np.ndarray, f0_min: float, f0_max: float) -> np.ndarray:
    """Float32 copy of `f0` with values outside [f0_min, f0_max] (and NaN) set to 0.0 = unvoiced."""
    out = np.asarray(f0, dtype=np.float32).copy()
    out[~((out >= f0_min) & (out <= f0_max))] = 0.0
    return out


def bin_range(f0_min: float, f0_max: float) -> tuple[int, int]:
    """Indices [lo, hi) of the 360-bin grid whose centres lie in [f0_min, f0_max] (at least one bin)."""
    cents = 1200.0 * np.log2(np.array([f0_min, f0_max]) / 10.0)
    lo = int(np.clip(np.ceil((cents[0] - CENTS_BIN0) / CENTS_PER_BIN), 0, N_BINS - 1))
    hi = int(np.clip(np.floor((cents[1] - CENTS_BIN0) / CENTS_PER_BIN) + 1, lo + 1, N_BINS))
    return lo, hi


def local_average_f0(salience: np.ndarray, threshold: float, lo: int = 0, hi: int = N_BINS) -> np.ndarray:
    """Decode a (T, 360) pitch salience into (T,) Hz, 0.0 where unvoiced.

    The peak bin is searched in [lo, hi); the estimate is the salience-weighted mean of the cents of the
    9 bins around it (±4, cut at the grid's edges), the decoding CREPE and RMVPE both use: it recovers pitch
    between bin centres. A frame whose peak salience is not above `threshold` is unvoiced.
    """
    salience = np.asarray(salience, dtype=np.float64)  # (T, 360)
    n = salience.shape[0]
    peak = lo + np.argmax(salience[:, lo:hi], axis=1)  # (T,)
    window = peak[:, None] + np.arange(-4, 5)[None, :]  # (T, 9)
    inside = (window >= 0) & (window < N_BINS)
    window = np.clip(window, 0, N_BINS - 1)
    weights = np.take_along_axis(salience, window, axis=1) * inside  # (T, 9)
    total = weights.sum(axis=1)
    cents = (weights * BIN_CENTS[window]).sum(axis=1) / np.where(total > 0, total, 1.0)
    f0 = 10.0 * np.exp2(cents / 1200.0)
    voiced = (salience[np.arange(n), peak] > threshold) & (total > 0)
    return np.where(voiced, f0, 0.0).astype(np.float32)
