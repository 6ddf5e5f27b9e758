"""The RVC voice's fixed-shape plan: from a stream configuration to the steps' shapes, modules and runners.

The eager CPU path (rtvc.voices.rvc) analyses a window whose length follows the stream: shorter at the
stream's start (nothing before time 0) and alternating by 10 ms with 10 ms blocks (the content grid is 20 ms).
Graphs and engines need one shape, so the step path fixes it:
- content: always W samples (a multiple of 320) ending on the 20 ms line at or after the newest 10 ms line:
  up to 10 ms of zeros past the newest audio (the eager path has up to 10 ms less instead), and at the
  stream's start W samples with silence before time 0 (the eager path gives HuBERT only the audio since 0);
- synth: T = W / 160 - 1 frames ending on the newest 10 ms line (whatever its parity), `ret` of them decoded;
- F0 (CREPE's network): a segment of the block + the estimator's context each side, as the eager path's
  steady state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rtvc.backends.base import StreamShape
from rtvc.rvc.steps import SynthShape

HOP = 160
GRID = 320
IN_RATE = 16000


@dataclass(frozen=True)
class Plan:
    window: int  # samples of the converter's window at 16 kHz (context + block)
    content: int  # W: samples the content step sees
    synth: SynthShape
    f0_segment: int  # samples of newest audio the F0 estimator sees

    @property
    def content_rows(self) -> int:
        return self.content // GRID


def plan_for(window: int, block: int, tail: int, margin: int, look: int, f0_lookahead: int) -> Plan:
    """Fixed shapes for a window of `window` samples, blocks of `block`, a tail of `tail` (all at 16 kHz)."""
    content = (window - (GRID - 1)) // GRID * GRID  # its start never falls before the window's
    frames = content // HOP - 1
    ret = min(-(-tail // HOP) + margin + look, frames)
    seg = (block // HOP + 2 * -(-f0_lookahead // HOP) + 2) * HOP
    return Plan(window, content, SynthShape(frames, ret), min(seg, frames * HOP))


def plan_from_shape(shape: StreamShape, upp: int, f0_lookahead: int) -> Plan:
    """The plan a StreamShape (from `stream_shape`) stands for."""
    frames = shape.context // HOP - 1
    ret = shape.tail // upp
    seg = (shape.block // HOP + 2 * -(-f0_lookahead // HOP) + 2) * HOP
    return Plan(shape.context + GRID - 1, shape.context, SynthShape(frames, ret), min(seg, frames * HOP))


def stream_shape(
    voice, block_ms: float, samplerate: int, crossfade_ms: float = 3.0, search_ms: float = 8.0, context_ms: float = 0.0
) -> StreamShape:
    """The StreamShape of `voice` in a stream of `samplerate` Hz with these [stream] settings (config.py's
    defaults), computed as the streaming converter computes its window and tail."""
    from rtvc.converter import StreamShape as DeviceShape
    from rtvc.converter import _Rates

    ms = samplerate / 1000.0
    frames = [round(v * ms) for v in (block_ms, crossfade_ms, search_ms, context_ms)]
    dev = DeviceShape(samplerate, *frames)
    dev.validate()
    rates = _Rates(dev, voice.samplerate, voice.out_samplerate, voice.frame_ms)
    voice.check_block(rates.block_v)  # (as the stream's start does: `rtvc build` built engines for such a block)
    tail = rates.tail_v + rates.pad_v
    context = max(rates.to_voice(dev.context), voice.context_for(tail))
    plan = voice.plan(context + rates.block_v, rates.block_v, tail)
    return StreamShape(
        samplerate=IN_RATE,
        out_samplerate=voice.out_samplerate,
        block=rates.block_v,
        context=plan.content,
        tail=plan.synth.ret * voice.rvc.upp,
    )


def f0_lookahead(est) -> int:
    return 0 if est is None else int(est.lookahead)


def window_bounds(pos: int, content: int) -> tuple[int, int, int]:
    """(end, content start, content end) in absolute 16 kHz samples for a window ending at `pos`."""
    end = -(-pos // HOP) * HOP
    cend = math.ceil(end / GRID) * GRID
    return end, cend - content, cend
