"""The noise gate: the output is silent while the microphone carries only the room.

A voice model turns what it hears between words (a fan, keyboard, breathing, the microphone's own hiss) into
sounds of its own: an RVC voice mumbles over a fan, a pitch-shifted fan hums. The gate listens to the
microphone (the input blocks, before any conversion) and lets the converted voice through only while the input
is louder than `threshold_db`.

- Level: RMS over the last WINDOW_MS of input, judged every HOP_MS.
- It opens at `threshold_db` and closes only below `threshold_db - HYSTERESIS_DB` (no chatter on a level that
  hovers at the threshold), after `hold_ms` below it (the pauses inside a sentence stay open).
- Gain ramps: up over ATTACK_MS, down over RELEASE_MS (no clicks).
- The output lags the input by the converter's latency, so the gate reads the microphone ahead of what it
  gates: the ramp up ends as the first loud input frame's output plays, and a word's onset is never cut. (A
  converter with less latency than ATTACK_MS fades in over what it has; passthrough, with none, steps up at the
  start of the hop whose level crossed: the step is on the room's noise, below the threshold.)

Settings change from any thread (one reference store), in effect from the next block. Off, or open and
settled, the gate costs a comparison per block.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

WINDOW_MS = 10.0
HOP_MS = 2.5
ATTACK_MS = 5.0
RELEASE_MS = 100.0
HYSTERESIS_DB = 6.0
MAX_DELAY_S = 2.0  # a converter latency beyond this is read as this (no voice comes near it)


@dataclass(frozen=True)
class GateSettings:
    on: bool = True
    threshold_db: float = -60.0  # dBFS RMS of the input that opens the gate
    hold_ms: float = 200.0  # time below the closing level before the gate closes


class NoiseGate:
    def __init__(self, samplerate: int, block: int, settings: GateSettings | None = None):
        self.samplerate, self.block = samplerate, block
        self.settings = settings or GateSettings()
        ms = samplerate / 1000.0
        self._window = max(1, round(WINDOW_MS * ms))
        hops = max(1, round(block / (HOP_MS * ms)))
        self._edges = [int(v) for v in np.linspace(0, block, hops + 1).round()]  # hop boundaries in the block
        self._attack = max(1, round(ATTACK_MS * ms))
        self._release = max(1, round(RELEASE_MS * ms))
        self._max_delay = round(MAX_DELAY_S * samplerate)
        self._input = np.zeros(self._window + block, dtype=np.float64)  # the last window's input + this block
        self._gains = np.ones(self._max_delay + block, dtype=np.float32)  # per input position, newest last
        self._gain = 1.0  # at the newest input position
        self.open = True  # starts open: a stream that starts with speech plays its first word whole
        self._held = 0  # frames spent below the closing level while open
        self._settled = True  # every stored gain is 1: the output passes untouched
        self.closed_frames = 0  # output frames the gate silenced (gain 0), in total

    def reset(self) -> None:
        """Open and settled, as at the start (a new stream after a device switch)."""
        self._input[:] = 0
        self._gains[:] = 1
        self._gain, self.open, self._held, self._settled = 1.0, True, 0, True

    def process(self, x: np.ndarray, y: np.ndarray, delay: int) -> np.ndarray:
        """x: this block's input (block,), y: the converter's output for it (block,), lagging x by `delay`
        frames. Returns y gated (a new array), or y itself where the gate passes it untouched."""
        s, n = self.settings, self.block
        if not s.on and self._settled:
            return y
        self._input[: self._window] = self._input[n:]
        self._input[self._window :] = x
        g = self._gains
        g[:-n] = g[n:]
        # the output frame i plays input position (block start + i - delay): the gate reads `attack` frames ahead,
        # and its fade-in is that long, so that it is over when the onset plays (a converter with less latency
        # than ATTACK_MS gets a shorter one; passthrough, none: the gain steps up at the start of the hop whose
        # level crossed, where only the room is, below the threshold)
        delay = min(self._max_delay, max(0, delay))
        attack = min(self._attack, delay)
        if s.on:
            self._judge(s, g[-n:], attack)
        else:  # switched off: ramp up to open, then settle
            self.open, self._held = True, 0
            self._ramp(g[-n:], 0, n, 1.0, self._attack)
        lag = delay - attack
        start = len(g) - n - lag
        gains = g[start : start + n]
        if self._gain == 1.0 and (gains == 1.0).all():
            self._settled = self._settled or bool((g == 1.0).all())
            return y
        self._settled = False
        self.closed_frames += int(np.count_nonzero(gains == 0.0))
        return y * gains

    def _judge(self, s: GateSettings, out: np.ndarray, attack: int) -> None:
        sq = np.concatenate(([0.0], np.cumsum(self._input * self._input)))
        w = self._window
        open_at = 10.0 ** (s.threshold_db / 10.0)  # (in power: mean of squares)
        close_at = 10.0 ** ((s.threshold_db - HYSTERESIS_DB) / 10.0)
        hold = round(s.hold_ms * self.samplerate / 1000.0)
        e = self._edges
        for a, b in itertools.pairwise(e):
            power = (sq[b + w] - sq[b]) / w  # the window ending at this hop's end
            if power >= (close_at if self.open else open_at):
                self.open, self._held = True, 0
            elif self.open:
                self._held += b - a
                if self._held > hold:
                    self.open = False
            self._ramp(out, a, b, 1.0 if self.open else 0.0, attack)

    def _ramp(self, out: np.ndarray, a: int, b: int, target: float, attack: int) -> None:
        """Gains for frames [a, b) moving from the current gain toward `target`: up over `attack` frames (0: at
        once), down over the release."""
        g = self._gain
        if g == target or (target > g and attack == 0):
            out[a:b] = target
            self._gain = target
            return
        steps = np.arange(1, b - a + 1, dtype=np.float64)
        up = target > g
        seg = np.minimum(target, g + steps / attack) if up else np.maximum(target, g - steps / self._release)
        out[a:b] = seg
        self._gain = float(seg[-1])
