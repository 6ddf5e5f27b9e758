"""RVC's decoder ("dec"): HiFi-GAN, with the neural-source-filter (NSF) sine source for f0 voices.

latent z (1, inter, T) at 100 Hz -> audio (1, 1, T * upp) at the voice's rate, upp = prod(upsample_rates).
Each stage: leaky_relu(0.1) -> transposed conv (x rate) -> + noise_conv(har_source) (f0 voices) -> mean
of the resblocks. Then leaky_relu(0.01, PyTorch's default, as RVC calls it), conv_post (no bias), tanh.

The sine source follows RVC branch 20240604 (SineGen after commit 709bbba): one harmonic, amplitude 0.1,
noise std 0.003 voiced / 0.1/3 unvoiced, with the per-frame phase accumulation reproduced in the same
float32 steps (see `sine_phase`), because the output is very sensitive to the phase.

Names follow RVC's `GeneratorNSF` / `Generator` / `ResBlock1` / `ResBlock2`; weight-normed convs
(`ups`, resblock convs) are plain here, the loader folds weight norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.1
SINE_AMP = 0.1
NOISE_STD = 0.003  # additive noise on voiced samples; unvoiced samples get SINE_AMP / 3


def _same(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """3 x (lrelu, dilated conv, lrelu, conv, residual add)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same(kernel_size, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same(kernel_size, 1)) for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:  # (1, C, N)
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """len(dilations) x (lrelu, dilated conv, residual add)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same(kernel_size, d)) for d in dilations
        )

    def forward(self, x: Tensor) -> Tensor:  # (1, C, N)
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


def _frame_advance(f0: Tensor, samplerate: int, upp: int) -> tuple[Tensor, Tensor]:
    """rad (T, upp) = (f0 / sr) * (j + 1): the in-frame phase in cycles; w (T,): each frame's wrapped advance."""
    ramp = torch.arange(1, upp + 1, dtype=f0.dtype, device=f0.device)
    rad = (f0[:, None] / samplerate) * ramp  # (T, upp), float32: divide first, then scale, as RVC does
    w = torch.fmod(rad[:, -1] + 0.5, 1.0) - 0.5  # (T,) in [-0.5, 0.5)
    return rad, w


def _offsets(w: Tensor, phase0: float) -> Tensor:
    """(len(w) + 1,) phase at the start of each frame, and after the last, in float32, fmod 1.

    torch's CPU cumsum of float32 accumulates in float64 and rounds each partial sum to float32; we do
    that explicitly so every device gives RVC's numbers. A leading phase0 of 0 leaves every partial sum
    (and so RVC's result) unchanged.
    """
    start = torch.full((1,), phase0, dtype=torch.float64, device=w.device)
    return torch.cat([start, w.double()]).cumsum(0).float().fmod(1.0)


def sine_phase(f0: Tensor, samplerate: int, upp: int, phase0: float = 0.0) -> Tensor:
    """(T,) f0 in Hz -> (T * upp,) sine phase in cycles (not wrapped) at each output sample."""
    rad, w = _frame_advance(f0, samplerate, upp)
    offsets = _offsets(w[:-1], phase0)  # (T,): frame t starts at the wrapped sum of frames < t
    return (rad + offsets[:, None]).reshape(-1)


def sine_phase_end(pitchf_frames: Tensor, samplerate: int, upp: int, phase0: float = 0.0) -> float:
    """Phase (cycles, fmod 1, so in (-1, 1)) after `pitchf_frames` (T,), in the sine source's float32 steps.

    Pass it as `phase0` for the frames that follow, and the sine continues as if both spans were one call.
    """
    f0 = pitchf_frames.reshape(-1).float()
    if f0.numel() == 0:
        return float(torch.tensor(phase0, dtype=torch.float64).float().fmod(1.0))
    _, w = _frame_advance(f0, samplerate, upp)
    return float(_offsets(w, phase0)[-1])


def sine_excitation(f0: Tensor, samplerate: int, upp: int, noise: Tensor, phase0: float = 0.0) -> Tensor:
    """RVC's SineGen output: (T,) f0 Hz (0 = unvoiced), (T * upp,) standard-normal noise -> (T * upp,)."""
    t = f0.shape[0]
    sine = torch.sin(sine_phase(f0, samplerate, upp, phase0) * (2 * math.pi)) * SINE_AMP  # (T * upp,)
    uv = (f0 > 0).to(f0.dtype)[:, None]  # (T, 1), repeated over the frame's samples by broadcasting
    amp = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3  # (T, 1)
    sine = sine.view(t, upp) * uv + amp * noise.view(t, upp)
    return sine.reshape(-1)


class SineSource(nn.Module):
    """`m_source`: tanh(l_linear(excitation)) with l_linear = Linear(1, 1) (one harmonic)."""

    def __init__(self, samplerate: int, upp: int):
        super().__init__()
        self.samplerate = samplerate
        self.upp = upp
        self.l_linear = nn.Linear(1, 1)

    def forward(self, f0: Tensor, noise: Tensor, phase0: float = 0.0) -> Tensor:  # (T,), (T*upp,) -> (1, T*upp, 1)
        exc = sine_excitation(f0, self.samplerate, self.upp, noise, phase0)
        return torch.tanh(self.l_linear(exc.view(1, -1, 1)))


def sum_of_branches(blocks, x: Tensor) -> Tensor:
    """The multi-receptive-field fusion: the resblocks of one stage read the same input; their outputs summed,
    in order. (rtvc.backends.gpu_forms' "parallel-branches" runs them side by side on a GPU, summed the same.)"""
    xs = blocks[0](x)
    for block in blocks[1:]:
        xs = xs + block(x)
    return xs


class Decoder(nn.Module):
    """HiFi-GAN generator; with `samplerate` set it is RVC's GeneratorNSF (sine source + noise convs)."""

    sum_branches = staticmethod(sum_of_branches)  # (an instance's own replaces it: rtvc.backends.gpu_forms)

    def __init__(
        self,
        inter_channels: int,
        resblock: str,
        resblock_kernel_sizes: list[int],
        resblock_dilation_sizes: list[list[int]],
        upsample_rates: list[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: list[int],
        gin_channels: int,
        samplerate: int | None,
    ):
        super().__init__()
        block = {"1": ResBlock1, "2": ResBlock2}[resblock]
        self.num_kernels = len(resblock_kernel_sizes)
        self.upp = math.prod(upsample_rates)
        self.m_source = SineSource(samplerate, self.upp) if samplerate is not None else None
        self.conv_pre = nn.Conv1d(inter_channels, upsample_initial_channel, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList() if samplerate is not None else None
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            ch = upsample_initial_channel // (2 ** (i + 1))
            self.ups.append(nn.ConvTranspose1d(2 * ch, ch, k, u, padding=(k - u) // 2))
            if self.noise_convs is not None:
                # brings the sample-rate source down to this stage's rate
                if i + 1 < len(upsample_rates):
                    s = math.prod(upsample_rates[i + 1 :])
                    self.noise_convs.append(nn.Conv1d(1, ch, 2 * s, stride=s, padding=s // 2))
                else:
                    self.noise_convs.append(nn.Conv1d(1, ch, 1))
            for kr, dil in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, kr, dil))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(
        self,
        x: Tensor,  # (1, inter, L)
        g: Tensor,  # (1, gin, 1)
        f0: Tensor | None = None,  # (L,) Hz
        noise: Tensor | None = None,  # (L * upp,)
        n_res: int | None = None,
        phase0: float = 0.0,
    ) -> tuple[Tensor, Tensor | None]:
        """-> audio (1, 1, n * upp) with n = n_res or L, and har_source (1, L * upp, 1) (None without f0)."""
        har = None
        source = None
        if self.m_source is not None:
            har = self.m_source(f0, noise, phase0)  # (1, L * upp, 1)
            source = har.transpose(1, 2)  # (1, 1, L * upp)
        if n_res is not None:
            # RVC's stream mode can stretch the span (return_length2): linear resampling of both inputs
            if source is not None and n_res * self.upp != source.shape[-1]:
                source = F.interpolate(source, size=n_res * self.upp, mode="linear")
            if n_res != x.shape[-1]:
                x = F.interpolate(x, size=n_res, mode="linear")
        return self.run(x, g, source), har

    def run(self, x: Tensor, g: Tensor, source: Tensor | None) -> Tensor:
        """The generator proper: latent (1, inter, n), speaker (1, gin, 1), the sine source at the output rate
        (1, 1, n * upp) or None -> audio (1, 1, n * upp). The fixed-shape synth step (rtvc.rvc.steps) calls it
        with a source it computed in float32 from a phase input."""
        x = self.head(x, g)
        for i in range(len(self.ups)):
            x = self.stage_in(i, x, source)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = self.sum_branches(blocks, x) / self.num_kernels
        return self.tail(x)

    # (run's pieces: rtvc.backends.gpu_forms compiles them one by one around the branches it runs side by side)
    def head(self, x: Tensor, g: Tensor) -> Tensor:
        return self.conv_pre(x) + self.cond(g)

    def stage_in(self, i: int, x: Tensor, source: Tensor | None) -> Tensor:
        x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
        return x if source is None else x + self.noise_convs[i](source)

    def tail(self, x: Tensor) -> Tensor:
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # slope 0.01 here, as in RVC
