"""RVC's synthesizer at inference: content features + pitch -> audio, with every random draw injected.

`Synthesizer` ties RVC's four parts under their state-dict names: `enc_p` (text encoder, attention.py),
`flow` (reverse normalising flow, flow.py), `dec` (NSF-HiFiGAN, nsf.py) and `emb_g` (speaker table).
`infer` is RVC's `SynthesizerTrnMs{256,768}NSFsid[_nono].infer` (branch 20240604): with skip_head=0 and
return_length=None the full call, with them the stream call of RVC's real-time path. The noise RVC
draws inside infer() (flow noise, sine noise) is passed in, so a caller controls it and tests can
replay RVC's captured draws.

`coarse_pitch` is RVC's Hz -> pitch-id mapping for `emb_pitch` (Pipeline.get_f0). `sine_phase_end`
(from nsf.py) gives the `phase0` that continues the sine source of one call into the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rtvc.rvc.attention import TextEncoder
from rtvc.rvc.flow import Flow
from rtvc.rvc.nsf import Decoder, sine_phase_end

__all__ = ["PHONE_DIM", "SynthConfig", "SynthTrace", "Synthesizer", "coarse_pitch", "sine_phase_end"]

PHONE_DIM = {"v1": 256, "v2": 768}  # HuBERT layer-9 projection (v1) / layer-12 hidden state (v2)
NOISE_SCALE = 0.66666  # RVC's literal prior noise scale, not 2/3
FLOW_CONTEXT = 24  # stream mode: frames before skip_head that the flow still sees (RVC's `skip_head - 24`)


@dataclass(frozen=True)
class SynthConfig:
    """RVC's 18-item `config` list, in order (field names from RVC's training hparams)."""

    spec_channels: int  # sizes only enc_q, which inference does not use
    segment_size: int  # training only
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float  # 0 at inference (eval)
    resblock: str  # "1" | "2"
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]
    upsample_rates: list[int]
    upsample_initial_channel: int
    upsample_kernel_sizes: list[int]
    spk_embed_dim: int
    gin_channels: int
    sr: int

    @property
    def upp(self) -> int:
        return math.prod(self.upsample_rates)

    def to_list(self) -> list:
        return [getattr(self, name) for name in self.__dataclass_fields__]


@dataclass
class SynthTrace:
    """Everything one `Synthesizer.trace` call computed (for parity checks and debugging)."""

    m_p: Tensor  # (1, inter, T - flow_head)
    logs_p: Tensor  # (1, inter, T - flow_head)
    z_p: Tensor  # (1, inter, T - flow_head)
    z: Tensor  # (1, inter, L): L = T, or return_length in stream mode
    har_source: Tensor | None  # (1, L * upp, 1), before any return_length2 resampling; None without f0
    audio: Tensor  # (1, 1, n * upp): n = return_length2 if given, else L


class Synthesizer(nn.Module):
    def __init__(self, config: SynthConfig, phone_dim: int, f0: bool):
        super().__init__()
        c = config
        self.config = config
        self.f0 = f0
        self.phone_dim = phone_dim
        self.samplerate = c.sr
        self.upp = c.upp
        self.inter_channels = c.inter_channels
        self.enc_p = TextEncoder(
            phone_dim, c.inter_channels, c.hidden_channels, c.filter_channels, c.n_heads, c.n_layers, c.kernel_size, f0
        )
        self.dec = Decoder(
            c.inter_channels,
            c.resblock,
            c.resblock_kernel_sizes,
            c.resblock_dilation_sizes,
            c.upsample_rates,
            c.upsample_initial_channel,
            c.upsample_kernel_sizes,
            c.gin_channels,
            c.sr if f0 else None,
        )
        self.flow = Flow(c.inter_channels, c.hidden_channels, c.gin_channels)
        self.emb_g = nn.Embedding(c.spk_embed_dim, c.gin_channels)

    def infer(
        self,
        phone: Tensor,
        pitch: Tensor | None,
        pitchf: Tensor | None,
        sid: int,
        flow_noise: Tensor,
        sine_noise: Tensor | None,
        skip_head: int = 0,
        return_length: int | None = None,
        return_length2: int | None = None,
        phase0: float = 0.0,
    ) -> Tensor:
        """-> audio (1, 1, samples). See `trace` for the arguments."""
        return self.trace(
            phone, pitch, pitchf, sid, flow_noise, sine_noise, skip_head, return_length, return_length2, phase0
        ).audio

    @torch.inference_mode()
    def trace(
        self,
        phone: Tensor,  # (1, T, phone_dim) float32, 100 Hz
        pitch: Tensor | None,  # (1, T) int64 coarse pitch (f0 voices)
        pitchf: Tensor | None,  # (1, T) float32 Hz, 0 = unvoiced (f0 voices)
        sid: int,
        flow_noise: Tensor,  # (1, inter, T - flow_head) standard normal
        sine_noise: Tensor | None,  # (1, L * upp) or (1, L * upp, 1) standard normal (f0 voices)
        skip_head: int = 0,
        return_length: int | None = None,
        return_length2: int | None = None,
        phase0: float = 0.0,  # sine phase (cycles) at the first decoded frame; RVC uses 0
    ) -> SynthTrace:
        t = phone.shape[1]
        if phone.dim() != 3 or phone.shape[0] != 1 or phone.shape[2] != self.phone_dim:
            raise ValueError(f"phone must be (1, T, {self.phone_dim}), got {tuple(phone.shape)}")
        if not 0 <= sid < self.emb_g.num_embeddings:
            raise ValueError(f"speaker id {sid} is out of range: this voice has {self.emb_g.num_embeddings} speakers")
        if return_length is None:
            if skip_head:
                raise ValueError("skip_head needs return_length (RVC's stream mode takes both)")
            head, length, flow_head = 0, t, 0
        else:
            head, length = int(skip_head), int(return_length)
            if head < 0 or length < 1 or head + length > t:
                raise ValueError(f"skip_head {head} + return_length {length} must lie within the {t} frames given")
            flow_head = max(head - FLOW_CONTEXT, 0)
        if self.f0:
            if pitch is None or pitchf is None or sine_noise is None:
                raise ValueError("an f0 voice needs pitch, pitchf and sine_noise")
            if pitch.shape != (1, t) or pitchf.shape != (1, t):
                raise ValueError(f"pitch and pitchf must be (1, {t}), got {tuple(pitch.shape)}, {tuple(pitchf.shape)}")
            if sine_noise.numel() != length * self.upp:
                raise ValueError(f"sine_noise must hold {length} x {self.upp} samples, got {tuple(sine_noise.shape)}")
        if flow_noise.shape != (1, self.inter_channels, t - flow_head):
            raise ValueError(
                f"flow_noise must be (1, {self.inter_channels}, {t - flow_head}), got {tuple(flow_noise.shape)}"
            )

        g = self.emb_g.weight[sid].view(1, -1, 1)  # (1, gin, 1)
        m_p, logs_p = self.enc_p(phone, pitch if self.f0 else None, flow_head)  # (1, inter, T - flow_head)
        z_p = m_p + torch.exp(logs_p) * flow_noise * NOISE_SCALE
        z = self.flow.reverse(z_p, g)
        dec_head = head - flow_head
        z = z[:, :, dec_head : dec_head + length]  # (1, inter, L)
        f0 = pitchf[0, head : head + length] if self.f0 else None  # (L,)
        noise = sine_noise.reshape(-1) if self.f0 else None
        audio, har = self.dec(z, g, f0, noise, return_length2, phase0)
        return SynthTrace(m_p=m_p, logs_p=logs_p, z_p=z_p, z=z, har_source=har, audio=audio)


F0_MEL_MIN = 1127 * math.log(1 + 50 / 700)
F0_MEL_MAX = 1127 * math.log(1 + 1100 / 700)


def coarse_pitch(f0_hz: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """RVC's coarse pitch ids (int64, 1..255; 1 = unvoiced or <= 50 Hz) in float64, as Pipeline.get_f0.

    mel = 1127 ln(1 + f0/700), mapped linearly so 50 Hz -> 1 and 1100 Hz -> 255, clipped, rounded to even.
    Returns the same kind (numpy array or tensor, on the same device) as given.
    """
    is_tensor = isinstance(f0_hz, Tensor)
    f0 = f0_hz.detach().cpu().double().numpy() if is_tensor else np.asarray(f0_hz, dtype=np.float64)
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - F0_MEL_MIN) * 254 / (F0_MEL_MAX - F0_MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    ids = np.rint(mel).astype(np.int64)
    return torch.from_numpy(ids).to(f0_hz.device) if is_tensor else ids
