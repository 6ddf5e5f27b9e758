"""One RVC conversion step, shared by the streamed voice and the offline whole-file mode.

    16 kHz audio ─▶ content features (50 Hz) ─▶ [index blend] ─▶ 100 Hz ─┐
              └──▶ F0 per 10 ms frame ─▶ × 2^(pitch/12) ─▶ coarse + Hz ──┴▶ synthesizer ─▶ model-rate audio

Frames are 10 ms on an absolute timeline: frame t covers input samples [160 t, 160 t + 160) and output
samples [upp t, upp t + upp); its F0 is measured centred on sample 160 t (RVC's convention). Content
frames come every 320 samples from where the analysed audio starts, so callers start it on a multiple
of 320: then a streamed window and the whole file see the same frame grid. Noise is drawn per absolute
frame (`FrameNoise`), and the sine source's phase at the first decoded frame is an input, so a streamed
decode continues the whole-file one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rtvc.rvc.checkpoint import RvcModel
from rtvc.rvc.content import ContentEncoder
from rtvc.rvc.index import FeatureIndex
from rtvc.rvc.noise import FrameNoise
from rtvc.rvc.synth import coarse_pitch

HOP = 160  # 16 kHz samples per 10 ms frame
CONTENT_HOP = 320  # 16 kHz samples per content frame (50 Hz)
FLOW_MARGIN = 24  # frames of flow context before the decoded ones: the flow's receptive field (RVC's too)


@dataclass(frozen=True)
class Step:
    """What one decode needs, at 100 Hz, for frames [first, first + T) of the absolute timeline."""

    first: int  # absolute index of row 0
    content50: np.ndarray  # (ceil(T / 2), dim) content features, row k <-> frames first + 2k, +2k+1
    f0: np.ndarray  # (T,) source F0 in Hz, 0 = unvoiced (before the pitch shift)
    audio: np.ndarray  # (T * HOP,) the 16 kHz input of those frames (for the RMS mix)
    lead: int = 0  # frames of content50's first row before `first` (0, or 1 in the fixed-shape path)


class RvcPipeline:
    def __init__(self, model: RvcModel, content: ContentEncoder, index: FeatureIndex | None, seed: int):
        self.model = model
        self.content = content
        self.index = index
        self.noise = FrameNoise(seed, model.inter_channels, model.upp)

    def content_frames(self, audio16k: np.ndarray) -> np.ndarray:
        """(N,) with N a multiple of 160 -> (ceil(N / 320), dim): one 50 Hz row per 2 decoder frames.

        HuBERT yields (N - 400) // 320 + 1 frames; the last rows repeat its last frame (RVC does the same:
        the newest 20 ms have no complete receptive field yet)."""
        need = -(-len(audio16k) // CONTENT_HOP)
        with torch.inference_mode():
            feats = self.content.features(torch.from_numpy(np.ascontiguousarray(audio16k, np.float32))[None])[0]
        feats = feats.numpy()
        if len(feats) < need:
            feats = np.concatenate([feats, np.repeat(feats[-1:], need - len(feats), axis=0)])
        return feats[:need]

    def decode(self, step: Step, skip: int, params, phase0: float = 0.0) -> np.ndarray:
        """Decode frames [first + skip, first + T) with `params` -> ((T - skip) * upp,) float32 at the
        model's rate. The text encoder sees all T frames; the flow the last T - skip + 24; the decoder
        only the T - skip it returns. `phase0`: the sine source's phase (cycles) at frame first + skip."""
        m = self.model
        x = self.synth_inputs(step, skip, params, phase0)
        with torch.inference_mode():
            audio = m.net.infer(
                torch.from_numpy(x["phone"])[None],
                torch.from_numpy(x["pitch"]) if m.f0 else None,
                torch.from_numpy(x["pitchf"]) if m.f0 else None,
                params.speaker,
                torch.from_numpy(x["flow_noise"]),
                torch.from_numpy(x["sine_noise"]) if m.f0 else None,
                skip_head=skip,
                return_length=len(step.f0) - skip,
                phase0=phase0,
            )
        return self.finish(audio.reshape(-1).numpy(), step, skip, params)

    def synth_inputs(self, step: Step, skip: int, params, phase0: float) -> dict[str, np.ndarray]:
        """The synthesizer's inputs for `decode`, as the fixed-shape synth step names them (rtvc.rvc.steps):
        phone (T, dim) [no batch axis], pitch (1, T) int64, pitchf (1, T), sid (1,), flow_noise
        (1, inter, T - flow_head), sine_noise (1, (T - skip) * upp), phase0 (1,) float32."""
        m = self.model
        t_all = len(step.f0)
        flow_head = max(skip - FLOW_MARGIN, 0)
        feats0 = step.content50
        feats = feats0
        if self.index is not None and params.index_rate > 0:
            k0 = (flow_head + step.lead) // 2  # retrieval only where it reaches the flow, as RVC's realtime path
            feats = feats0.copy()
            feats[k0:] = self.index.blend(feats0[k0:], params.index_rate)
        phone = np.repeat(feats, 2, axis=0)[step.lead : step.lead + t_all]  # (T, dim) at 100 Hz
        f0 = step.f0 * np.float32(2.0 ** (params.pitch / 12.0))
        if m.f0 and feats is not feats0 and params.protect < 0.5:
            # keep the source's own features on unvoiced frames (consonants, breaths): retrieval smears them
            phone0 = np.repeat(feats0, 2, axis=0)[step.lead : step.lead + t_all]
            keep = np.where(f0 > 0, 1.0, params.protect).astype(np.float32)[:, None]
            phone = phone * keep + phone0 * (1.0 - keep)
        a = step.first + skip
        flow_noise, _ = self.noise.frames(step.first + flow_head, step.first + t_all)
        _, sine_noise = self.noise.frames(a, step.first + t_all)
        return {
            "phone": np.ascontiguousarray(phone, np.float32),
            "pitch": coarse_pitch(f0)[None],
            "pitchf": f0.astype(np.float32)[None],
            "sid": np.array([params.speaker], np.int64),
            "flow_noise": flow_noise[None],
            "sine_noise": sine_noise[None],
            "phase0": np.array([phase0], np.float32),
        }

    def finish(self, out: np.ndarray, step: Step, skip: int, params) -> np.ndarray:
        """The synthesizer's audio -> the voice's output: RMS mix and gain."""
        if params.rms_mix < 1.0:
            out = self.rms_mix(out, step.audio[skip * HOP :], params.rms_mix)
        if params.gain_db:
            out = out * np.float32(10.0 ** (params.gain_db / 20.0))
        return out

    def rms_mix(self, out: np.ndarray, src: np.ndarray, rate: float) -> np.ndarray:
        """Give the output the input's loudness contour, by (1 - rate): gain (rms_in / rms_out)^(1 - rate)
        per 10 ms frame, interpolated between frame centres (RVC's "volume envelope mix")."""
        upp = self.model.upp
        n = len(out) // upp
        rms_out = np.sqrt(np.mean(out[: n * upp].reshape(n, upp) ** 2, axis=1) + 1e-12)
        rms_in = np.sqrt(np.mean(src[: n * HOP].reshape(n, HOP) ** 2, axis=1) + 1e-12)
        gain = (rms_in / np.maximum(rms_out, 1e-3)) ** (1.0 - rate)
        centres = (np.arange(n) + 0.5) * upp
        g = np.interp(np.arange(len(out)), centres, gain)
        return (out * g).astype(np.float32)
