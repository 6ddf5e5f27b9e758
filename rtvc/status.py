"""The status snapshot every control surface reads: one frozen dataclass, JSON-ready."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from rtvc.latency import LatencyBreakdown
from rtvc.timing import TimingStats

FLOOR_DB = -120.0  # silence is reported as this, not -inf (JSON has no infinities)


def dbfs(linear: float) -> float:
    return max(FLOOR_DB, 20.0 * math.log10(linear)) if linear > 0 else FLOOR_DB


@dataclass(frozen=True)
class Levels:
    """Levels of the latest block, dBFS."""

    in_peak: float
    in_rms: float
    out_peak: float
    out_rms: float
    limit_db: float = 0.0  # what the output limiter took off the block at most (rtvc.limiter), <= 0

    @classmethod
    def from_linear(
        cls, in_peak: float, in_rms: float, out_peak: float, out_rms: float, limit_db: float = 0.0
    ) -> Levels:
        return cls(*(round(dbfs(v), 2) for v in (in_peak, in_rms, out_peak, out_rms)), round(limit_db, 2) + 0.0)


@dataclass(frozen=True)
class Xruns:
    input_overrun_frames: int  # dropped: the worker fell behind by more than the input ring holds
    input_overrun_events: int
    output_underrun_frames: int  # played as silence: a block was not ready in time
    output_underrun_events: int
    output_late_frames: int  # produced after their slot had been played, dropped
    # produced, never played: an output or monitor stream whose callbacks stopped a while skipped ahead to the
    # declared latency (or the ring overwrote them first)
    output_skipped_frames: int
    output_skipped_events: int
    monitor_underrun_frames: int
    monitor_underrun_events: int
    portaudio: dict[str, int]  # PortAudio's callback status flags, counted
    # callbacks that carried any xrun flag (priming_output is PortAudio's start-up, not an xrun): one xrun of a
    # duplex stream sets an input and an output flag in the same callback, and is one event
    portaudio_events: int = 0

    @property
    def total(self) -> int:
        """Events a listener could hear."""
        heard = self.input_overrun_events + self.output_underrun_events + self.output_skipped_events
        return heard + self.monitor_underrun_events + self.portaudio_events


@dataclass(frozen=True)
class EngineStatus:
    state: str  # starting | running | overloaded | voice failed | stalled | failed | stopped
    detail: str  # why, when not plainly running
    voice: str
    samplerate: int
    block: int  # frames per processing block
    period: int  # frames per device callback
    callbacks: int
    blocks: int  # blocks processed
    latency: LatencyBreakdown | None
    worker_slack_ms: float  # time guaranteed to the worker per block
    timing: TimingStats
    xruns: Xruns
    levels: Levels
    monitor: bool
    worker_priority: str = "normal"  # the worker thread's scheduling, as the system granted it
    # blocks with NaN/infinity silenced: {"input_blocks": from the device, "output_blocks": from the voice}
    nonfinite: dict[str, int] = field(default_factory=lambda: {"input_blocks": 0, "output_blocks": 0})
    # blocks on which the voice raised and silence played: {"blocks": n, "last": the latest error, in words}
    voice_errors: dict = field(default_factory=lambda: {"blocks": 0, "last": ""})
    # the monitor (hear-myself) device: a stream playing, and why it stopped if it did
    monitor_device: dict = field(default_factory=lambda: {"present": False, "error": ""})
    # blocks dropped unconverted because their output slot had been played: the worker fell behind
    skipped_blocks: int = 0
    # times the audio server changed its period under running streams and the latency was planned anew
    period_changes: int = 0
    # blocks converted while the state was overloaded, and the latest such state's words (they outlive it)
    overload: dict = field(default_factory=lambda: {"blocks": 0, "last": ""})
    # blocks the output limiter lowered (rtvc.limiter): they would have clipped where they were played
    limited_blocks: int = 0
    # the noise gate (rtvc.gate): its settings, whether it lets the voice through now, seconds it silenced
    gate: dict = field(
        default_factory=lambda: {"on": False, "threshold_db": -60.0, "hold_ms": 200.0, "open": True, "closed_s": 0.0}
    )
    # why no one hears the output, or the voice no microphone, while the streams run on (the virtual microphone
    # removed, the device's JACK program closed): kept on the dock and the TUI while it holds; "" otherwise
    unheard: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["latency"] = self.latency.to_dict() if self.latency else None
        d["xruns"]["total"] = self.xruns.total
        return d

    def line(self, width: int | None = None) -> str:
        """One status line for a terminal; with `width`, one that fits it (a line that wrapped on an 80-column
        terminal left a new line at every update, since the carriage return goes back to its last row only):
        the short form, then cut, with the levels and xruns before the rest."""
        lat = f"{self.latency.ms(self.latency.total):.1f} ms" if self.latency else "-"
        t = self.timing
        gate = "" if self.gate["open"] else "  gate closed"
        gate += f"  limiting {-self.levels.limit_db:.1f} dB" if self.levels.limit_db < -0.05 else ""
        detail = f"  [{self.detail}]" if self.detail else ""
        full = (
            f"{self.state:<8} latency {lat}  block {t.p50_ms:.2f}/{t.p99_ms:.2f} ms p50/p99"
            f" ({100 * t.load:.0f}% load)  xruns {self.xruns.total}"
            f"  in {self.levels.in_peak:6.1f} dBFS  out {self.levels.out_peak:6.1f} dBFS" + gate + detail
        )
        if width is None or len(full) < width:
            return full
        short = (
            f"{self.state} {lat}  xruns {self.xruns.total}  in {self.levels.in_peak:.1f}  out"
            f" {self.levels.out_peak:.1f} dBFS  p99 {t.p99_ms:.1f} ms" + gate + detail
        )
        return short if len(short) < width else short[: max(1, width - 2)] + "…"
