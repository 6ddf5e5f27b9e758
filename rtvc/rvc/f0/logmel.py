"""Log-mel front end of the neural F0 models (RMVPE, FCPE): 16 kHz, n_fft = window = 1024, hop 160, 128 mels.

Both models were trained on `log(max(mel_basis @ |STFT|, 1e-5))` of a periodic-Hann STFT; they differ in the
mel scale (RMVPE: HTK formula, 30-8000 Hz; FCPE: Slaney formula, 0-8000 Hz; both Slaney area-normalised, as
librosa's `filters.mel` builds them), in FCPE adding 1e-9 under the magnitude's square root, and in framing.
Frame t covers samples [160·t - left, 160·t - left + 1024) of the signal reflect-padded by `left` samples on the
left and 1024 - left on the right, which gives N // 160 + 1 frames for N samples:
- RMVPE: left = 512, frame t centred on 160·t (RMVPE's STFT pads n_fft/2 at both ends);
- FCPE: left = (1024 - 160) / 2 = 432, torchfcpe's own padding, frame t centred on 160·t + 80. The network was
  trained on that framing with f0 labels at 160·t: on a 100-400 Hz sweep its estimates match the sweep's
  frequency at 160·t within 0.4 ms this way, and lag it by 4.6 ms if fed frames centred on 160·t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rtvc.rvc.f0.base import HOP, SR

N_FFT = 1024


def hz_to_mel(hz: np.ndarray, htk: bool) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney's Auditory Toolbox scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above.
    f_sp, logstep = 200.0 / 3.0, np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz / f_sp, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / logstep)


def mel_to_hz(mel: np.ndarray, htk: bool) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, logstep = 200.0 / 3.0, np.log(6.4) / 27.0
    return np.where(mel < 15.0, f_sp * mel, 1000.0 * np.exp(logstep * (mel - 15.0)))


def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, each scaled by 2 / (its bandwidth in Hz)."""
    fft_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)  # (F,)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)  # (M + 2,)
    width = np.diff(edges)  # (M + 1,)
    rise = (fft_hz[None, :] - edges[:-2, None]) / width[:-1, None]  # (M, F)
    fall = (edges[2:, None] - fft_hz[None, :]) / width[1:, None]  # (M, F)
    weights = np.maximum(0.0, np.minimum(rise, fall))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@dataclass(frozen=True)
class MelSpec:
    n_mels: int
    fmin: float
    fmax: float
    htk: bool
    mag_eps: float  # added to re² + im² before the square root
    left: int  # samples of reflection before the signal; 1024 - left after it
    clamp: float = 1e-5  # floor before the log


RMVPE_MEL = MelSpec(n_mels=128, fmin=30.0, fmax=8000.0, htk=True, mag_eps=0.0, left=512)
FCPE_MEL = MelSpec(n_mels=128, fmin=0.0, fmax=8000.0, htk=False, mag_eps=1e-9, left=432)


class LogMel:
    """Audio (N,) -> log-mel (n_mels, N // 160 + 1) float32 tensor, framed as the module docstring says."""

    def __init__(self, spec: MelSpec):
        self.spec = spec
        basis = mel_filterbank(sr=SR, n_fft=N_FFT, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk)
        self.basis = torch.from_numpy(basis)  # (M, 513)
        self.window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)  # scipy's 'hann', fftbins

    def pad(self, audio: np.ndarray) -> np.ndarray:
        """Reflect `left` samples before and 1024 - left after the signal. numpy's reflect keeps reflecting when
        the input is shorter than the pad (torch's refuses), so inputs of any length give N // 160 + 1 frames."""
        if audio.size == 0:
            return np.zeros(N_FFT, dtype=np.float32)
        widths = (self.spec.left, N_FFT - self.spec.left)
        return np.pad(audio, widths, mode="reflect" if audio.size > 1 else "edge")

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        padded = torch.from_numpy(np.ascontiguousarray(self.pad(audio), dtype=np.float32))
        spec = torch.stft(
            padded, N_FFT, hop_length=HOP, win_length=N_FFT, window=self.window, center=False, return_complex=True
        )  # (513, T)
        power = spec.real.square() + spec.imag.square()
        mag = torch.sqrt(power + self.spec.mag_eps) if self.spec.mag_eps else torch.sqrt(power)
        mel = self.basis @ mag  # (M, T)
        return torch.log(torch.clamp(mel, min=self.spec.clamp))
