"""`pitch`: the built-in voice. Pitch shift and formant shift, independent, no model files.

Pitch: each block's tail is read from the window at `ratio` times the speed, band-limited
(windowed-sinc interpolation whose cut-off follows the ratio), so every tail holds the voice at exactly
`ratio` times its pitch; the converter's SOLA joins consecutive tails where their waveforms line up.
Reading faster moves the formants up with the pitch ("chipmunk"), so:

Formants: short-time spectra of the shifted tail are multiplied by E(w / f) / E(w / r), where E is
the spectral envelope of the input (cepstrally smoothed), r the pitch ratio and f the formant ratio:
the formants land at f times their original frequencies whatever the pitch. With f = r nothing is
done (the chipmunk/giant presets cost no FFT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from rtvc.settings import in_range, setting

MAX_SEMITONES = 24.0
FRAME_S = 0.0213  # STFT frame for the envelope (1024 at 48 kHz)
LIFTER_S = 0.0016  # cepstral cut-off for frames with no clear pitch
MAX_LIFTER_S = 0.004  # the longest cut-off (voices below 200 Hz): keeps F1 and F2 apart
ENV_RANGE = 7.0  # nepers (~60 dB) below an envelope's peak count as empty
MAX_GAIN = 3.0  # nepers (~26 dB): the most the formant correction boosts or cuts a band


@dataclass(frozen=True)
class PitchParams:
    pitch: float = setting(0.0, "pitch shift in semitones (fractional)", in_range(-MAX_SEMITONES, MAX_SEMITONES))
    formant: float = setting(
        0.0, "formant shift in semitones, independent of pitch (+ smaller, - bigger)", in_range(-12.0, 12.0)
    )
    gain_db: float = setting(0.0, "output gain in dB", in_range(-60.0, 24.0))


class PitchVoice:
    kind: ClassVar[str] = "pitch"
    Params: ClassVar[type] = PitchParams

    def __init__(self, samplerate: int):
        self.label = "pitch + formant shifter"
        self.samplerate = samplerate
        self.latency = 0
        self._frame = 1 << round(math.log2(FRAME_S * samplerate))  # 1024 at 48 kHz
        self._hop = self._frame // 2
        self._nfft = self._frame  # the correction is a smooth gain: little circular aliasing
        self._margin = self._frame  # left warm-up of the STFT, cut away
        # sqrt of a periodic Hann on analysis and synthesis: their product overlap-adds to one at hop N/2
        self._win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self._frame) / self._frame))
        # the envelope is analysed on longer input frames: two periods of a 50 Hz voice
        self._env_frame = 2 * self._frame
        self._env_win = np.hanning(self._env_frame)
        self._quef = np.minimum(np.arange(self._env_frame), self._env_frame - np.arange(self._env_frame))
        self._pitch_range = (round(samplerate / 600), round(samplerate / 50))  # cepstral pitch search (samples)
        self._default_lifter = LIFTER_S * samplerate
        self._max_lifter = MAX_LIFTER_S * samplerate
        # synthesis bins (N-point FFT) on the envelope's (2N-point) grid
        self._bins = np.arange(self._nfft // 2 + 1, dtype=np.float64) * (self._env_frame / self._nfft)
        self._norms: dict[tuple[int, int], np.ndarray] = {}

    def context_for(self, tail: int) -> int:
        ratio = 2.0 ** (MAX_SEMITONES / 12)
        return math.ceil((tail + self._margin) * ratio + 64 * ratio) + self._env_frame

    def reset(self) -> None:
        pass

    # -- the conversion ---------------------------------------------------------------------------
    def convert(self, window: np.ndarray, tail: int, params: PitchParams) -> np.ndarray:
        r = 2.0 ** (params.pitch / 12.0)
        f = 2.0 ** (params.formant / 12.0)
        n = tail + self._margin
        # output frame j reads the window at pos[j]; the last output frame is the newest input frame
        pos = (len(window) - 1) - (n - 1 - np.arange(n)) * r
        y = resample_at(window, pos, cutoff=min(1.0, 1.0 / r))
        if abs(math.log(r / f)) > 1e-6:
            y = self._move_formants(y, window, pos, r, f)
        y = y[self._margin :]
        if params.gain_db:
            y = y * 10.0 ** (params.gain_db / 20.0)
        return y.astype(np.float32)

    def _envelope(self, frames: np.ndarray) -> np.ndarray:
        """frames: (F, 2N) windowed -> (F, N + 1) log-magnitude spectral envelope.

        Cepstral smoothing with the cut-off adapted to each frame's pitch (0.6 of the period found as
        the cepstral peak): low enough to drop the harmonics, high enough to keep F1 and F2 apart."""
        spec = np.fft.rfft(frames, axis=1)
        logmag = np.log(np.abs(spec) + 1e-9)
        cep = np.fft.irfft(logmag, self._env_frame, axis=1)
        lo, hi = self._pitch_range
        peak = lo + np.argmax(cep[:, lo:hi], axis=1)  # (F,) pitch period in samples, if voiced
        voiced = cep[np.arange(len(cep)), peak] > 0.08
        cut = np.where(voiced, np.minimum(0.55 * peak, self._max_lifter), self._default_lifter)
        lifter = np.clip(cut[:, None] - self._quef[None, :] + 0.5, 0.0, 1.0)
        env = np.fft.rfft(cep * lifter, axis=1).real
        # an empty band (nothing above the tone's last harmonic) must not be "restored" by a huge gain
        return np.maximum(env, env.max(axis=1, keepdims=True) - ENV_RANGE)

    def _move_formants(self, y: np.ndarray, window: np.ndarray, pos: np.ndarray, r: float, f: float) -> np.ndarray:
        N, hop = self._frame, self._hop
        n = len(y)
        starts = np.arange(-N + hop, n, hop)  # frames covering every output sample
        padded = np.concatenate([np.zeros(N), y, np.zeros(N)])
        idx = (starts + N)[:, None] + np.arange(N)[None, :]
        frames = padded[idx] * self._win  # (F, N)
        spec = np.fft.rfft(frames, self._nfft, axis=1)
        # one input envelope per tail, from around where its newest part was read: the envelope changes
        # slowly next to a 5-20 ms block, and SOLA crossfades into the next tail's
        E = self._env_frame
        src = int(np.clip(round(pos[n - self._margin // 2]) - E // 2, 0, len(window) - E))
        env = self._envelope(window[None, src : src + E].astype(np.float64) * self._env_win)  # (1, bins)
        # gain = E(w / f) / E(w / r): the shifted spectrum has E(w / r); we want E(w / f)
        target = _interp_rows(env, self._bins / f)
        current = _interp_rows(env, self._bins / r)
        gain = np.exp(np.clip(target - current, -MAX_GAIN, MAX_GAIN))  # (1, bins)
        # moving formants reshapes the spectrum, it should not make the voice louder: keep each frame's energy
        power = np.abs(spec) ** 2
        gain = gain * np.sqrt(
            power.sum(axis=1, keepdims=True) / np.maximum((power * gain**2).sum(axis=1, keepdims=True), 1e-20)
        )
        spec *= gain
        out_frames = np.fft.irfft(spec, self._nfft, axis=1)[:, :N] * self._win
        out = _overlap_add(out_frames, hop, n + 2 * N, first=hop)
        norm = self._norm(len(out_frames), n + 2 * N)
        return out[N : N + n] / norm[N : N + n]

    def _norm(self, frames: int, length: int) -> np.ndarray:
        key = (frames, length)
        if key not in self._norms:  # one per stream shape
            w2 = np.broadcast_to(self._win**2, (frames, self._frame))
            self._norms[key] = np.maximum(_overlap_add(w2, self._hop, length, first=self._hop), 1e-3)
        return self._norms[key]


def _overlap_add(frames: np.ndarray, hop: int, length: int, first: int) -> np.ndarray:
    """Sum (F, N) frames, frame i starting at first + i*hop (N a multiple of hop), into (length,)."""
    n = frames.shape[1]
    out = np.zeros(length)
    for q in range(n // hop):  # frames q, q + n/hop, ... lie back to back
        run = frames[q :: n // hop].ravel()
        start = first + q * hop
        end = min(length, start + len(run))
        out[start:end] += run[: end - start]
    return out


def _interp_rows(rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row (F, bins) at fractional bin positions `at` (clamped)."""
    at = np.clip(at, 0, rows.shape[1] - 1)
    i = np.minimum(at.astype(np.int64), rows.shape[1] - 2)
    frac = at - i
    return rows[:, i] * (1 - frac) + rows[:, i + 1] * frac


@lru_cache(maxsize=8)
def lowpass_taps(cutoff: float, half: int) -> np.ndarray:
    """(2*half+1,) Hann-windowed sinc low-pass, cut-off in units of Nyquist, unit DC gain."""
    t = np.arange(-half, half + 1)
    h = cutoff * np.sinc(cutoff * t) * (0.5 + 0.5 * np.cos(np.pi * t / (half + 1)))
    return h / h.sum()


_KERNELS: dict[int, np.ndarray] = {}
PHASES = 512  # fractional positions of the interpolation kernel table


def _kernel_table(h: int) -> np.ndarray:
    """(PHASES + 1, 2h) Hann-windowed sinc taps for fractional offsets 0, 1/PHASES, ..., 1."""
    if h not in _KERNELS:
        frac = np.arange(PHASES + 1)[:, None] / PHASES
        t = frac - np.arange(-h + 1, h + 1)[None, :]
        _KERNELS[h] = np.sinc(t) * (0.5 + 0.5 * np.cos(np.pi * t / h))
    return _KERNELS[h]


def resample_at(x: np.ndarray, pos: np.ndarray, cutoff: float, half_taps: int = 8) -> np.ndarray:
    """Band-limited read of x at fractional positions `pos` (cut-off in units of x's Nyquist).
    Below 1 the span read is low-passed first (a linear-phase FIR, so positions are unchanged), then
    read with a short windowed sinc from a table. Positions beyond x's ends read zeros."""
    h = half_taps
    lo = int(np.floor(pos.min())) - h
    hi = int(np.ceil(pos.max())) + h + 1
    seg = np.zeros(hi - lo)
    a, b = max(lo, 0), min(hi, len(x))
    if b > a:
        seg[a - lo : b - lo] = x[a:b]
    if cutoff < 0.999:
        half = math.ceil(2 * h / cutoff)
        seg = np.convolve(seg, lowpass_taps(0.92 * cutoff, half), mode="same")
    p = pos - lo
    base = np.floor(p).astype(np.int64)
    if np.all(p == base):  # integer positions (no pitch shift): a plain copy
        return seg[base]
    kernel = _kernel_table(h)[np.rint((p - base) * PHASES).astype(np.int64)]  # (n, 2h)
    taps = seg[base[:, None] + np.arange(-h + 1, h + 1)[None, :]]  # (n, 2h)
    return np.einsum("ij,ij->i", taps, kernel)
