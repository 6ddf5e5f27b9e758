"""The neural F0 estimators as fixed-shape steps: the newest audio in, pitch salience out, on any backend.

    f0   audio (1, S) f32 16 kHz  ->  salience (T, 360) f32,  T = S // 160 + 1 frames, frame t centred on 160·t

A step holds all of an estimator's model work for one block: its front end (CREPE's normalised 1024-sample
frames; the log-mel of FCPE and RMVPE) and its network. Turning the salience into Hz (peak bin, local weighted
average of cents, voicing threshold, f0 range) is a few thousand multiplies over ~12 frames: it stays on the
host in the estimator's own `decode`, so the eager estimator and every backend decode alike.

The log-mel's STFT is a strided conv1d whose kernel is the windowed DFT basis: TensorRT's ONNX parser has no
DFT or STFT operator (onnx-tensorrt docs/operators.md), and the same conv runs in CUDA graphs and onnxruntime.
It equals torch.stft within float32 rounding. In fp16 steps the front ends stay fp32 (the log of small
powers, CREPE's per-frame normalisation), as the networks' norms do (rtvc.rvc.steps' fp32 islands).
YIN has no network: it stays numpy on the CPU (1.3 ms per 20 ms block on this project's 2-vCPU machine).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rtvc.backends.base import TensorSpec
from rtvc.rvc.f0.base import HOP, N_BINS, n_frames
from rtvc.rvc.f0.logmel import N_FFT, MelSpec, mel_filterbank
from rtvc.rvc.f0.rmvpe import TILE, reflect_index

CREPE_WINDOW = 1024
CREPE_SILENCE_RMS = 10 ** (-70 / 20)  # rtvc.rvc.f0.crepe.SILENCE_RMS


def _precision(precision: str) -> torch.dtype:
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    return torch.float16 if precision == "fp16" else torch.float32


def _specs(samples: int) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    return (TensorSpec("audio", (1, samples), "float32"),), (
        TensorSpec("salience", (n_frames(samples), N_BINS), "float32"),
    )


def _fp16_net(net: nn.Module) -> nn.Module:
    """A fp16 copy of `net` with its layer/group norms kept fp32 (rtvc.rvc.steps' islands)."""
    from rtvc.rvc.steps import _norms_to_fp32

    net = copy.deepcopy(net).half()
    _norms_to_fp32(net)
    return net


class ConvLogMel(nn.Module):
    """rtvc.rvc.f0.logmel.LogMel for a fixed length, in ops every backend runs: (1, S) -> (1, n_mels, S // 160 + 1).
    Reflection padding as LogMel's (S must exceed the pad: the segments are >= 1760 samples), then the periodic-Hann
    windowed DFT as a conv1d of stride 160 (cos rows, then -sin rows), power, magnitude, mel matrix, log."""

    def __init__(self, spec: MelSpec, samples: int):
        super().__init__()
        if samples <= max(spec.left, N_FFT - spec.left):
            raise ValueError(f"the log-mel needs more than {N_FFT - spec.left} samples, got {samples}")
        self.spec = spec
        bins = N_FFT // 2 + 1
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * ((k * n) % N_FFT) / N_FFT  # exact phases: k·n reduced before scaling
        dft = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2 · 513, 1024)
        self.register_buffer("dft", dft.float()[:, None, :])  # (1026, 1, 1024)
        basis = mel_filterbank(sr=16000, n_fft=N_FFT, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, htk=spec.htk)
        self.register_buffer("basis", torch.from_numpy(basis))  # (M, 513)
        self.bins = bins

    def forward(self, audio: Tensor) -> Tensor:
        x = F.pad(
            audio.float()[:, None, :], (self.spec.left, N_FFT - self.spec.left), mode="reflect"
        )  # (1, 1, S + 1024)
        spec = F.conv1d(x, self.dft, stride=HOP)  # (1, 1026, T)
        re, im = spec[:, : self.bins], spec[:, self.bins :]
        power = re * re + im * im
        mag = torch.sqrt(power + self.spec.mag_eps) if self.spec.mag_eps else torch.sqrt(power)
        mel = torch.matmul(self.basis, mag)  # (1, M, T)
        return torch.log(torch.clamp(mel, min=self.spec.clamp))


class FcpeStep(nn.Module):
    """FCPE (torchfcpe's CFNaiveMelPE): its log-mel, then the network's latent = the salience on FCPE's own
    360-bin grid (FcpeF0.decode reads it)."""

    def __init__(self, net: nn.Module, samples: int, precision: str = "fp32"):
        super().__init__()
        from rtvc.rvc.f0.logmel import FCPE_MEL

        self.dtype = _precision(precision)
        self.mel = ConvLogMel(FCPE_MEL, samples)
        self.net = net if self.dtype == torch.float32 else _fp16_net(net)
        self.inputs, self.outputs = _specs(samples)

    def forward(self, audio: Tensor) -> Tensor:
        mel = self.mel(audio).transpose(1, 2)  # (1, T, 128)
        return self.net(mel.to(self.dtype))[0].float()  # (T, 360)


class RmvpeStep(nn.Module):
    """RMVPE: its log-mel, the frame axis reflected out to whole 32-frame tiles (as RmvpeF0.salience), the
    network, the first T frames."""

    def __init__(self, net: nn.Module, samples: int, precision: str = "fp32"):
        super().__init__()
        from rtvc.rvc.f0.logmel import RMVPE_MEL

        self.dtype = _precision(precision)
        self.mel = ConvLogMel(RMVPE_MEL, samples)
        self.net = net if self.dtype == torch.float32 else copy.deepcopy(net).half()  # batch norms: fp16 is fine
        self.frames = t = n_frames(samples)
        self.register_buffer("tiles", torch.from_numpy(reflect_index(t, -(-t // TILE) * TILE)))
        self.inputs, self.outputs = _specs(samples)

    def forward(self, audio: Tensor) -> Tensor:
        mel = self.mel(audio)[:, :, self.tiles]  # (1, 128, tiles)
        return self.net(mel.to(self.dtype))[0, : self.frames].float()  # (T, 360)


class CrepeStep(nn.Module):
    """CREPE (rtvc.rvc.f0.crepe.Crepe1d): frame t = the 1024 samples centred on 160·t of the zero-padded segment,
    mean-removed and scaled to unit (unbiased) standard deviation, then the network. A frame below -70 dBFS RMS
    gets zero salience, which decodes as unvoiced: CrepeF0.estimate's silence rule, inside the step."""

    def __init__(self, net: nn.Module, samples: int, precision: str = "fp32"):
        super().__init__()
        self.dtype = _precision(precision)
        self.net = net if self.dtype == torch.float32 else copy.deepcopy(net).half()
        t = n_frames(samples)
        index = HOP * np.arange(t)[:, None] + np.arange(CREPE_WINDOW)[None, :]  # into the padded segment
        self.register_buffer("index", torch.from_numpy(index))  # (T, 1024)
        self.inputs, self.outputs = _specs(samples)

    def forward(self, audio: Tensor) -> Tensor:
        padded = F.pad(audio.float(), (CREPE_WINDOW // 2, CREPE_WINDOW // 2))[0]  # (S + 1024,)
        frames = padded[self.index]  # (T, 1024)
        frames = frames - frames.mean(dim=1, keepdim=True)
        rms = torch.sqrt(torch.mean(frames * frames, dim=1, keepdim=True))  # (T, 1)
        std = torch.sqrt(torch.sum(frames * frames, dim=1, keepdim=True) / (CREPE_WINDOW - 1))
        frames = frames / torch.clamp(std, min=1e-10)
        salience = self.net(frames.to(self.dtype)).float()  # (T, 360)
        return salience * (rms >= CREPE_SILENCE_RMS).float()


def f0_step(est, samples: int, precision: str = "fp32") -> nn.Module | None:
    """The step of estimator `est` (rtvc.rvc.f0) over segments of `samples`, or None for one without a network."""
    name = est.name
    if name == "fcpe":
        return FcpeStep(est.net, samples, precision)
    if name == "rmvpe":
        return RmvpeStep(est.net, samples, precision)
    if name.startswith("crepe"):
        return CrepeStep(est.net, samples, precision)
    return None
