"""YIN F0 estimator (de Cheveigné & Kawahara 2002), numpy only, no weights, vectorised over frames and lags.

For frame t (centre c = 160·t; zeros beyond the signal's ends) and lag tau = a + b (a = tau // 2, b = tau - a):
  d(tau)  = sum_{j<W} (x[c - W/2 - a + j] - x[c - W/2 + b + j])²  (steps 1-2 of the paper)
The two compared windows sit symmetrically about c for every lag, so the estimate's time reference is the frame
centre whatever the period (the paper's fixed first window would put it (W + tau)/2 after the window's start,
up to 10 ms off across the lag range). W = tau_max = ceil(16000 / f0_min): a frame holds one period at f0_min.
  d'(tau) = d(tau)·tau / sum_{k=1..tau} d(k), d'(0) = 1  (cumulative mean normalisation, step 3)
  the first lag in [tau_min, tau_max] with d' < threshold, then down to the bottom of that dip; if no lag dips
  that low, the global minimum (step 4); voiced when d' there is below `voicing` (the paper reports d' as the
  aperiodicity and leaves the decision open; 0.3 keeps white noise, whose d' stays near 1, unvoiced while losing
  few of the speech frames Praat calls voiced)
  parabolic interpolation of d' around the chosen lag (step 5) gives the period in fractional samples.
A frame whose RMS is below -70 dBFS is unvoiced: there d' is a ratio of rounding noise.
Frame t uses samples c - lookahead .. c + lookahead only, so estimates are exactly local.
"""

from __future__ import annotations

import numpy as np

from rtvc.rvc.f0.base import HOP, SR, as_audio, keep_range, n_frames

THRESHOLD = 0.15  # absolute threshold of step 4: the first dip below it wins; the paper uses 0.1-0.15
VOICING = 0.3  # d' at the chosen lag above this = unvoiced
SILENCE_RMS = 10 ** (-70 / 20)


class YinF0:
    def __init__(
        self, *, f0_min: float = 50.0, f0_max: float = 1100.0, threshold: float = THRESHOLD, voicing: float = VOICING
    ):
        self.name = "yin"
        self.f0_min = float(f0_min)
        self.f0_max = float(f0_max)
        self.threshold = float(threshold)
        self.voicing = float(voicing)
        self.tau_min = max(2, int(np.floor(SR / self.f0_max)))
        self.tau_max = int(np.ceil(SR / self.f0_min))
        self.window = self.tau_max
        self.lags = np.arange(self.tau_max + 2)  # (K,): d' is needed at tau_max + 1 for the parabola
        self.half = self.window // 2
        self.a = self.lags // 2  # (K,) first window starts at c - half - a
        self.b = self.lags - self.a  # (K,) second window starts at c - half + b
        self.reach_left = int(self.half + self.a[-1])  # first sample used, left of c
        self.lookahead = int(self.b[-1] - self.half + self.window - 1)  # last sample used, right of c

    def cmnd(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) audio -> d'(tau) for all frames and lags (T, K), and each frame's RMS (T,)."""
        t = n_frames(audio.size)
        w, half, k = self.window, self.half, self.lags.size
        rows = int(self.b[-1]) + 1  # window offsets 0..max(a, b)
        left = half + rows - 1  # ≥ reach_left: the first-window view spans offsets up to rows - 1
        padded = np.zeros(left + HOP * t + w + rows + self.lookahead, dtype=np.float64)
        padded[left : left + audio.size] = audio
        centre = left + HOP * np.arange(t)  # (T,) c in padded coordinates
        # views[s, j, p] = padded[s + p + j]: every window start s .. s + rows - 1, no copy.
        sw = np.lib.stride_tricks.sliding_window_view
        views = sw(sw(padded, w), rows, axis=0)
        s_b = left - half  # start of the b = 0 window of frame 0
        s_a = s_b - (rows - 1)
        second = views[s_b : s_b + HOP * t : HOP].transpose(0, 2, 1)  # (T, R, W): [t, b] = window at c - half + b
        first = views[s_a : s_a + HOP * t : HOP].transpose(0, 2, 1)[:, ::-1]  # (T, R, W): [t, a] = at c - half - a
        n_even, n_odd = (k + 1) // 2, k // 2
        cross = np.empty((t, k))
        cross[:, 0::2] = np.einsum("taj,taj->ta", first[:, :n_even], second[:, :n_even])  # tau = 2a: b = a
        cross[:, 1::2] = np.einsum("taj,taj->ta", first[:, :n_odd], second[:, 1 : n_odd + 1])  # tau = 2a+1: b = a+1
        energy = np.concatenate([[0.0], np.cumsum(padded**2)])
        s1 = centre[:, None] - half - self.a[None, :]  # (T, K)
        s2 = centre[:, None] - half + self.b[None, :]
        d = (energy[s1 + w] - energy[s1]) + (energy[s2 + w] - energy[s2]) - 2.0 * cross
        reach = energy[centre + self.lookahead + 1] - energy[centre - self.reach_left]
        rms = np.sqrt(np.maximum(reach, 0.0) / (self.reach_left + self.lookahead + 1))
        return self._normalise(np.maximum(d, 0.0)), rms  # rounding can leave tiny negatives in d

    def _normalise(self, diff: np.ndarray) -> np.ndarray:
        diff[:, 0] = 0.0
        running = np.cumsum(diff, axis=1)  # (B, K)
        norm = np.ones_like(diff)
        ok = running[:, 1:] > 0
        norm[:, 1:] = np.where(ok, diff[:, 1:] * self.lags[1:] / np.where(ok, running[:, 1:], 1.0), 1.0)
        return norm

    def estimate(self, audio16k: np.ndarray) -> np.ndarray:
        d, rms = self.cmnd(as_audio(audio16k))  # (T, K), (T,)
        lags = self.lags
        searchable = (lags >= self.tau_min) & (lags <= self.tau_max)  # (K,)
        below = (d < self.threshold) & searchable[None, :]
        dipped = below.any(axis=1)
        first = np.argmax(below, axis=1)  # (T,) first lag under the threshold
        # Bottom of that dip: the first lag at or after `first` where d' stops falling (or tau_max).
        stops = np.zeros_like(below)
        stops[:, :-1] = d[:, 1:] >= d[:, :-1]
        stops[:, self.tau_max] = True
        tau = np.argmax(stops & (lags[None, :] >= first[:, None]), axis=1)  # (T,)
        lowest = self.tau_min + np.argmin(d[:, self.tau_min : self.tau_max + 1], axis=1)  # (T,)
        tau = np.where(dipped, tau, lowest)
        rows = np.arange(d.shape[0])
        voiced = (d[rows, tau] < self.voicing) & (rms >= SILENCE_RMS)
        a, b, c = d[rows, tau - 1], d[rows, tau], d[rows, tau + 1]
        curve = a - 2.0 * b + c
        shift = np.where(curve > 0, 0.5 * (a - c) / np.where(curve > 0, curve, 1.0), 0.0)
        period = tau + np.clip(shift, -1.0, 1.0)
        f0 = np.zeros(d.shape[0])
        f0[voiced] = SR / period[voiced]
        return keep_range(f0, self.f0_min, self.f0_max)
