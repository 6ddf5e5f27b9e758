"""The noise gate: the output is silent while the microphone carries only the room.

A voice model turns what it hears between words (a fan, keyboard, breathing, the microphone's own hiss) into
sounds of its own: an RVC voice mumbles over a fan, a pitch-shifted fan hums. The gate listens to the
microphone (the input blocks, before any conversion) and lets the converted voice through only while the input
is louder than `threshold_db`.

- Level: RMS over the last WINDOW_MS of input, judged every HOP_MS.
- It opens at `threshold_db` and closes only below `threshold_db - HYSTERESIS_DB` (no chatter on a level that
  hovers at the threshold), after `hold_ms` below it (the pauses inside a sentence stay open).
- Opening is dated back to the start of the window whose level crossed (the sound that crossed lies in it, wherever
  in it, however it rises), with a fade-in over ATTACK_MS before that: the sound that crossed is never cut (what
  comes more than ATTACK_MS before it, under the threshold, is: a soft fricative's start in a noisy room, which no
  level gate hears; a review measured 37-43 ms of such starts lost at 20 dB speech-to-noise with the threshold 9-12
  dB over the room, 0-3 ms at 35 dB). The output lags the input by the converter's latency, so a gain for an input
  frame can be set until that frame's output plays: with WINDOW_MS + ATTACK_MS (15 ms) of latency all of it is in
  time; with less, the part that has played stays silent and the fade-in starts where playing is, and lasts until
  the window's start but at least MIN_ATTACK_MS, when there was sound before (a crescendo, a threshold lowered under
  a steady sound: a jump would click); out of silence (QUIET_DB under the threshold) it jumps where playing is, and
  the onset plays exact (passthrough, with no latency: within the block, in front of the hop that crossed).
- It fades out over RELEASE_MS once the hold is over.

Gains are kept per input frame, for the converter's latency. Settings change from any thread (one reference
store), in effect from the next block. Off and settled, the gate costs a comparison per block; on, some
tens of microseconds per block (`python bench/voice_cpu.py` times it inside the default voice's blocks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

WINDOW_MS = 10.0
HOP_MS = 2.5
ATTACK_MS = 5.0
MIN_ATTACK_MS = 2.0  # the shortest fade-in, where the latency leaves no room for ATTACK_MS before the sound
RELEASE_MS = 100.0
HYSTERESIS_DB = 6.0
QUIET_DB = 20.0  # input this far under the threshold before an opening is silence: the opening may jump there
MAX_DELAY_S = 2.0  # a converter latency beyond this is read as this (no voice comes near it)
# learn(): the threshold is set this far above the loudest the room was (the level judged), so that the room stays
# LEARN_MARGIN_DB under the closing level. What swung more than LEARN_SWING_DB (its loudest against its 10th
# percentile: a voice's level drops between syllables, a room's does not) or was louder than LEARN_LOUDEST_DB was not
# a room but a voice, typing or a knock, and the threshold it gave would cut speech: refused. (Measured over 1 s and
# more: white noise swings 1.0 dB, a fan's hum under noise 10.5; the bundled speech, anywhere in it, 23.8 at least.)
LEARN_MARGIN_DB = 2.0
LEARN_SWING_DB = 15.0
LEARN_LOUDEST_DB = -30.0
LEARN_MIN_S = 1.0  # (over half a second, speech swung 13 dB)
# learn(): the level of digital silence (a window's power floored at 1e-12): a room that loud was all zeros, a
# microphone muted at the hardware or the wrong input, and no room: refused (its threshold, -100 dBFS, never closes)
LEARN_SILENCE_DB = -120.0


@dataclass
class _Learning:
    want: int  # frames of input to judge
    seen: int = 0  # frames since it began
    powers: list = field(default_factory=list)  # the levels judged (mean squares)


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
        self._min_attack = max(1, round(MIN_ATTACK_MS * ms))
        self._release = max(1, round(RELEASE_MS * ms))
        self._max_delay = round(MAX_DELAY_S * samplerate)
        self._input = np.zeros(self._window + block, dtype=np.float64)  # the last window's input + this block
        self._gains = np.ones(self._max_delay + block, dtype=np.float32)  # per input position, newest last
        self._gain = 1.0  # at the newest input position
        self._played = 1.0  # the last gain played (the stored gains before the play position are not kept)
        self._before = 0.0  # the input's power over the window judged last (the hop before)
        self.open = True  # starts open: a stream that starts with speech plays its first word whole
        self._held = 0  # frames spent below the closing level while open
        self._settled = True  # every stored gain is 1: the output passes untouched
        self._span = 0  # gains kept up to date before the newest block (the delay of the block before)
        self.closed_frames = 0  # output frames the gate silenced (gain 0), in total
        self._learning: _Learning | None = None  # learn(): the room's levels being gathered (one reference store)
        self.learned: tuple[float, float] | None = None  # ... then: its loudest and 10th percentile, dBFS RMS

    def reset(self) -> None:
        """Open and settled, as at the start (a new stream after a device switch)."""
        self._input[:] = 0
        self._gains[:] = 1
        self._gain, self.open, self._held, self._settled, self._span = 1.0, True, 0, True, 0
        self._played, self._before = 1.0, 0.0

    def learn(self, seconds: float) -> None:
        """Any thread: gather the level the gate judges (RMS over WINDOW_MS, every HOP_MS) for `seconds` of input from
        the next block on, on or off; `learned` holds its loudest and 10th percentile then (dBFS; -120 for digital
        silence). The caller sets the threshold from them (rtvc.control.controller: learn_gate)."""
        if seconds < LEARN_MIN_S:
            raise ValueError(f"learn over {LEARN_MIN_S:g} s at least, not {seconds:g}")
        self.learned = None
        self._learning = _Learning(round(seconds * self.samplerate))

    def learning_off(self) -> None:
        """Any thread: stop a learn() that gets no input (nothing learned)."""
        self._learning = None

    def process(self, x: np.ndarray, y: np.ndarray, delay: int) -> np.ndarray:
        """x: this block's input (block,), y: the converter's output for it (block,), lagging x by `delay`
        frames. Returns y gated (a new array), or y itself where the gate passes it untouched."""
        s, n = self.settings, self.block
        learning = self._learning
        if not s.on and self._settled and learning is None:
            self._played = 1.0
            return y
        self._input[: self._window] = self._input[n:]
        self._input[self._window :] = x
        if learning is not None:
            self._gather(learning)
            if not s.on and self._settled:
                self._played = 1.0
                return y
        g = self._gains
        end = len(g)
        delay = min(self._max_delay, max(0, delay))
        # only the gains still to be played are kept up to date (the last `span` before this block: moving all
        # 2 s of them cost more than the rest of the gate); a longer delay now (another voice) sees the oldest
        # kept gain repeated back to it
        kept = self._span
        g[end - n - kept : end - n] = g[end - kept : end]
        if delay > kept:
            g[end - n - delay : end - n - kept] = g[end - n - kept] if kept else self._gain
        self._span = delay
        g[end - n :] = self._gain  # (this block's gains start where the last ended; judged below)
        # the output frame i plays input position (block start + i - delay): gains from index `first` on are
        # still to be played, and may be changed
        first = end - n - delay
        if s.on:
            self._settled = False
            self._judge(s, g, first)
        else:  # switched off: ramp up to open, then settle
            self.open, self._held = True, 0
            self._ramp(g, len(g) - n, len(g), 1.0)
        gains = g[first : first + n]
        self._played = float(gains[-1])
        if not s.on:
            self._settled = bool(g[first:].min() == 1.0)
        if gains.min() == 1.0:
            return y
        self.closed_frames += int(np.count_nonzero(gains == 0.0))
        return y * gains

    def _gather(self, learning: _Learning) -> None:
        """learn(): this block's levels, of the windows that hold only input that came since it began (the gate off,
        `_input` held what came before it was switched off; on, the last window before the learn: a review's loud
        sound then was taken for the room's)."""
        w, before = self._window, learning.seen
        learning.seen += self.block
        starts = np.array(self._edges[1:])  # (the window judged at each hop's end starts there in `_input`)
        fresh = starts[starts >= w - before]
        if len(fresh):
            sq = np.concatenate(([0.0], np.cumsum(self._input * self._input)))
            learning.powers.extend((sq[fresh + w] - sq[fresh]) / w)
        done = learning.seen - w >= learning.want  # (windows ending over `want` frames judged)
        if done and self._learning is learning:  # (not one given up and asked anew)
            db = 10.0 * np.log10(np.maximum(np.array(learning.powers), 1e-12))
            self.learned = (float(db.max()), float(np.percentile(db, 10)))
            self._learning = None

    def _judge(self, s: GateSettings, g: np.ndarray, first: int) -> None:
        sq = np.concatenate(([0.0], np.cumsum(self._input * self._input)))
        w, n = self._window, self.block
        open_at = 10.0 ** (s.threshold_db / 10.0)  # (in power: mean of squares)
        close_at = 10.0 ** ((s.threshold_db - HYSTERESIS_DB) / 10.0)
        hold = round(s.hold_ms * self.samplerate / 1000.0)
        base = len(g) - n  # index of this block's first input frame
        for a, b in itertools.pairwise(self._edges):
            power = (sq[b + w] - sq[b]) / w  # the window ending at this hop's end
            before, self._before = self._before, power
            if power >= open_at or (self.open and power >= close_at):
                if not self.open and self._gain < 1.0:  # opening (or back from a fade-out): from the window's start
                    # sound already there (the window before was within QUIET_DB of the threshold): a jump to it
                    # would click; out of silence the onset itself is the first sound, and is kept exact
                    gentle = before >= open_at * 10.0 ** (-QUIET_DB / 10.0)
                    self._open_from(g, base + b - w, base + b, first, gentle)
                else:  # open: 1, or a fade-in still under way carries on
                    self._ramp(g, base + a, base + b, 1.0)
                self.open, self._held = True, 0
            else:
                if self.open:
                    self._held += b - a
                    if self._held > hold:
                        self.open = False
                self._ramp(g, base + a, base + b, 1.0 if self.open else 0.0)

    def _open_from(self, g: np.ndarray, start: int, end: int, first: int, gentle: bool) -> None:
        """Open for the window [start, end): gains 1 over it, reached by a fade-in over the ATTACK before `start`
        where that is still to be played (from index `first`). Where it is not: out of silence, the gains jump
        to 1 at the play position (what plays before the onset is silence); over sound that was already there
        (`gentle`: a crescendo, a threshold lowered under a steady sound) a jump would click, so the fade-in
        starts where playing is, from the gain that played, and lasts until `start` but at least MIN_ATTACK.
        Never lowers a gain."""
        if start - self._attack >= first or not gentle:
            lo = max(first, start - self._attack)
            if lo < start:
                rise = (np.arange(lo, start) - (start - self._attack) + 1) / self._attack
                np.maximum(g[lo:start], rise.astype(np.float32), out=g[lo:start])
            g[max(first, start) : end] = 1.0
        else:
            lo, hi = first, max(start, first + self._min_attack)
            g0 = self._played  # (the stored gains before the play position are not kept)
            # (a fade longer than what is kept, block + latency under MIN_ATTACK: its start here, the rest by _ramp)
            n = min(hi, len(g)) - lo
            steps = np.arange(1, n + 1, dtype=np.float64) / (hi - lo)
            np.maximum(g[lo : lo + n], (g0 + (1.0 - g0) * steps).astype(np.float32), out=g[lo : lo + n])
            g[hi:end] = 1.0
        self._gain = float(g[end - 1])

    def _ramp(self, g: np.ndarray, a: int, b: int, target: float) -> None:
        """Gains for indices [a, b) moving from the current gain toward `target`: up over the attack, down over
        the release."""
        cur = self._gain
        if cur == target:
            g[a:b] = target
            return
        steps = np.arange(1, b - a + 1, dtype=np.float64)
        up = target > cur
        seg = np.minimum(target, cur + steps / self._attack) if up else np.maximum(target, cur - steps / self._release)
        g[a:b] = seg
        self._gain = float(seg[-1])
