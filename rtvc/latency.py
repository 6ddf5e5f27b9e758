"""Declared latency, and the output prefill that gives the worker a guaranteed time per block.

Timeline model (all in frames at the device rate). Callback k carries input [kP, kP+P) in and output
[kP, kP+P) out, and fires once its input has arrived. The worker can start on a block only in the
callback that delivers its last frame (k1), and the block's first output frame, F frames later on the
timeline (F = output prefill), is played by callback k2. The worker's time for that block is
(k2 - k1) periods. `plan_prefill` picks the smallest F >= block for which that time is at least the
requested headroom for every alignment of blocks against periods.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PrefillPlan:
    prefill: int  # F: frames of silence the output ring starts with (F >= block)
    slack: int  # the worker's guaranteed frames of time per block, over all alignments


def _worst_slack(block: int, period: int, prefill: int) -> int:
    cycle = period // math.gcd(block, period)  # alignments repeat every `cycle` blocks
    worst = None
    for b in range(cycle):
        k1 = ((b + 1) * block - 1) // period  # callback delivering the block's last frame
        k2 = (b * block + prefill) // period  # callback playing its first output frame
        slack = (k2 - k1) * period
        worst = slack if worst is None else min(worst, slack)
    return worst


def plan_prefill(block: int, period: int, headroom: int, separate_streams: bool = False) -> PrefillPlan:
    """Smallest prefill whose worst-case worker time per block is >= max(headroom, 1 frame).

    Block b needs k2 - k1 >= m periods, m = ceil(headroom / period): floor((b*block + F) / period) >=
    k1 + m, i.e. F >= (k1 + m) * period - b*block, for every b of the alignment cycle.
    With separate input and output streams their callbacks' phase is unknown: one more output period.
    """
    m = -(-max(headroom, 1) // period)
    cycle = period // math.gcd(block, period)
    prefill = block
    for b in range(cycle):
        k1 = ((b + 1) * block - 1) // period
        prefill = max(prefill, (k1 + m) * period - b * block)
    slack = _worst_slack(block, period, prefill)
    if separate_streams:
        prefill += period
    return PrefillPlan(prefill=prefill, slack=slack)


@dataclass(frozen=True)
class LatencyBreakdown:
    """Where the delay from microphone to speaker goes, in frames at `samplerate`."""

    samplerate: int
    device_in: int  # ADC + driver buffering: JACK's capture latency of the ports feeding rtvc, else PortAudio's
    block: int  # waiting for a whole block
    converter: int  # the converter's own delay (crossfade, SOLA search, lookahead)
    prefill: int  # output prefill beyond the block: the worker's time and period alignment
    device_out: int  # driver buffering + DAC: JACK's playback latency of the ports rtvc feeds, else PortAudio's

    @property
    def total(self) -> int:
        return self.device_in + self.block + self.converter + self.prefill + self.device_out

    def ms(self, frames: int) -> float:
        return 1e3 * frames / self.samplerate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total"] = self.total
        d["ms"] = {k: round(self.ms(v), 3) for k, v in d.items() if k != "samplerate"}
        return d

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {self.ms(getattr(self, name)):.1f}"
            for name in ("device_in", "block", "converter", "prefill", "device_out")
        )
        return f"{self.ms(self.total):.1f} ms ({parts})"
