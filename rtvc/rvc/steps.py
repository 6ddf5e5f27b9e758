"""An RVC voice's per-block model work as fixed-shape torch modules ("steps"), one per backend unit.

Once the stream is configured (block, context, tail), every model call of a block has the same shapes,
so each step can be captured once as a CUDA graph or exported once to ONNX / TensorRT:

    content  audio (1, W) f32 16 kHz                               -> features (1, W / 320, dim) f32
    f0       audio (1, S) f32 16 kHz, the newest S samples         -> salience (S / 160 + 1, 360) f32
             (FCPE, RMVPE, CREPE: front end + network; rtvc.rvc.f0_steps)
    synth    phone (1, T, dim) f32, pitch (1, T) i64, pitchf (1, T) f32, sid (1,) i64,
             flow_noise (1, inter, T - flow_head) f32, sine_noise (1, ret * upp) f32, phase0 (1,) f32
                                                                   -> audio (1, ret * upp) f32

(no-f0 voices: synth takes phone, sid and flow_noise only). Inputs and outputs are float32 at every
precision: an fp16 step casts inside, so the caller never changes. Noise is an input (TensorRT ignores
seeds; the stream draws it per absolute frame, rtvc.rvc.noise). skip / return lengths are baked in.

fp16 ("fp16 with fp32 islands"): the weights are fp16 except where fp16 loses the signal: the NSF sine
source (its per-frame phase accumulation, sin and l_linear stay fp32: the output is very sensitive to
the phase), the layer/group norms (normalisation after attention and in HuBERT's front end; see
ChannelLayerNorm and Fp32Norm) and HuBERT's input normalisation.

F0 with "yin" (no network) is numpy on the CPU; the estimator decodes a step's salience into Hz on the host.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rtvc.backends.base import TensorSpec
from rtvc.rvc.attention import ChannelLayerNorm
from rtvc.rvc.content import ContentEncoder
from rtvc.rvc.nsf import NOISE_STD, SINE_AMP, _frame_advance
from rtvc.rvc.synth import FLOW_CONTEXT, NOISE_SCALE, Synthesizer

CONTENT_HOP = 320  # 16 kHz samples per content frame


@dataclass(frozen=True)
class SynthShape:
    """The synthesizer's fixed frame counts for one stream shape."""

    frames: int  # T: frames the text encoder sees
    ret: int  # frames decoded and returned (the tail + margins)

    @property
    def skip(self) -> int:
        return self.frames - self.ret

    @property
    def flow_head(self) -> int:
        return max(self.skip - FLOW_CONTEXT, 0)


class Fp32Norm(nn.Module):
    """Runs a LayerNorm / GroupNorm in float32 inside an fp16 model and casts back (an fp32 island)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.float()).to(x.dtype)


def _norms_to_fp32(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.LayerNorm | nn.GroupNorm):
            setattr(module, name, Fp32Norm(child))
        else:
            _norms_to_fp32(child)


def _dtype(precision: str) -> torch.dtype:
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    return torch.float16 if precision == "fp16" else torch.float32


class ContentStep(nn.Module):
    """HuBERT/ContentVec over a fixed window of `samples` (a multiple of 320) -> samples / 320 rows: HuBERT's
    (samples - 400) // 320 + 1 frames and its last frame repeated once (as RvcPipeline.content_frames)."""

    def __init__(self, encoder: ContentEncoder, samples: int, precision: str = "fp32"):
        super().__init__()
        if samples % CONTENT_HOP or samples < encoder.min_samples + CONTENT_HOP:
            raise ValueError(f"the content window must be a multiple of 320 samples >= 720, got {samples}")
        self.encoder = encoder
        self.dtype = _dtype(precision)
        model = encoder.model
        if self.dtype != torch.float32:
            model = copy.deepcopy(model).to(self.dtype)
            _norms_to_fp32(model)
        self.model = model
        self.rows = samples // CONTENT_HOP
        self.inputs = (TensorSpec("audio", (1, samples), "float32"),)
        self.outputs = (TensorSpec("features", (1, self.rows, encoder.dim), "float32"),)

    def forward(self, audio: Tensor) -> Tensor:
        h = self.encoder.run(audio, self.model, self.dtype).float()  # (1, rows - 1, dim)
        return torch.cat([h, h[:, -1:]], dim=1)  # (1, rows, dim)


def sine_source(f0: Tensor, noise: Tensor, phase0: Tensor, samplerate: int, upp: int) -> Tensor:
    """RVC's SineGen excitation (rtvc.rvc.nsf.sine_excitation) with the phase at the first frame as a (1,)
    tensor, always in float32: (L,) Hz, (L * upp,) noise -> (L * upp,).

    The running phase is a float32 cumsum: on the CPU torch accumulates it in float64 and rounds each partial
    sum, the numbers nsf._offsets makes explicitly (so the CPU step equals the eager pipeline); CUDA, onnxruntime
    and TensorRT sum in float32 (the sum spans only the decoded frames, ~1e-7 cycles apart)."""
    f0 = f0.float()
    t = f0.shape[0]
    rad, w = _frame_advance(f0, samplerate, upp)  # (L, upp), (L,)
    offsets = torch.cat([phase0.reshape(1).float(), w[:-1]]).cumsum(0).fmod(1.0)  # (L,)
    phase = rad + offsets[:, None]  # (L, upp) cycles
    sine = torch.sin(phase * (2 * math.pi)) * SINE_AMP
    uv = (f0 > 0).float()[:, None]  # (L, 1)
    amp = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3
    return (sine * uv + amp * noise.float().view(t, upp)).reshape(-1)


class SynthStep(nn.Module):
    """Synthesizer.trace in stream mode with skip_head / return_length baked in and a tensor phase0."""

    def __init__(self, net: Synthesizer, shape: SynthShape, precision: str = "fp32"):
        super().__init__()
        if not 1 <= shape.ret <= shape.frames:
            raise ValueError(f"the synth returns 1..{shape.frames} frames, got {shape.ret}")
        self.dtype = _dtype(precision)
        if self.dtype != torch.float32:
            net = copy.deepcopy(net).to(self.dtype)
            if net.dec.m_source is not None:
                net.dec.m_source.float()  # fp32 island: the sine source's l_linear
            for norm in net.modules():
                if isinstance(norm, ChannelLayerNorm):
                    norm.float()  # fp32 island: the normalisation after attention (and after the FFN)
        self.net = net
        self.shape = shape
        t, inter, upp = shape.frames, net.inter_channels, net.upp
        specs = [TensorSpec("phone", (1, t, net.phone_dim), "float32")]
        if net.f0:
            specs += [TensorSpec("pitch", (1, t), "int64"), TensorSpec("pitchf", (1, t), "float32")]
        specs.append(TensorSpec("sid", (1,), "int64"))
        specs.append(TensorSpec("flow_noise", (1, inter, t - shape.flow_head), "float32"))
        if net.f0:
            specs += [TensorSpec("sine_noise", (1, shape.ret * upp), "float32"), TensorSpec("phase0", (1,), "float32")]
        self.inputs = tuple(specs)
        self.outputs = (TensorSpec("audio", (1, shape.ret * upp), "float32"),)

    def forward(self, *args: Tensor) -> Tensor:
        net, s, dt = self.net, self.shape, self.dtype
        if net.f0:
            phone, pitch, pitchf, sid, flow_noise, sine_noise, phase0 = args
        else:
            (phone, sid, flow_noise), pitch = args, None
        g = net.emb_g(sid).view(1, -1, 1)  # (1, gin, 1)
        m_p, logs_p = net.enc_p(phone.to(dt), pitch, s.flow_head)  # (1, inter, T - flow_head)
        z_p = m_p + torch.exp(logs_p) * flow_noise.to(dt) * NOISE_SCALE
        z = net.flow.reverse(z_p, g)
        dec_head = s.skip - s.flow_head
        z = z[:, :, dec_head : dec_head + s.ret]  # (1, inter, ret)
        source = None
        if net.f0:
            exc = sine_source(pitchf[0, s.skip :], sine_noise.reshape(-1), phase0, net.samplerate, net.upp)
            har = torch.tanh(net.dec.m_source.l_linear(exc.view(1, -1, 1)))  # (1, ret * upp, 1), fp32
            source = har.transpose(1, 2).to(dt)
        return net.dec.run(z, g, source).float().reshape(1, -1)


def example_inputs(step: nn.Module, seed: int = 0) -> tuple[Tensor, ...]:
    """Plausible inputs for a step's specs (tests, export tracing, warm-up): noise N(0, 1), audio at
    speech level, pitch ids and Hz of a voiced 100-300 Hz glide, speaker 0, phase 0.3 cycles."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for spec in step.inputs:
        if spec.name == "pitch" or spec.name == "pitchf":
            n = spec.shape[-1]
            hz = torch.linspace(100.0, 300.0, n).view(1, n)
            if spec.name == "pitchf":
                out.append(hz)
            else:
                from rtvc.rvc.synth import coarse_pitch

                out.append(coarse_pitch(hz))
        elif spec.name == "sid":
            out.append(torch.zeros(spec.shape, dtype=torch.int64))
        elif spec.name == "phase0":
            out.append(torch.full(spec.shape, 0.3))
        elif spec.name == "audio":
            out.append(0.1 * torch.randn(spec.shape, generator=g))
        else:
            out.append(torch.randn(spec.shape, generator=g))
    return tuple(out)
