"""`pitch`: the built-in voice. Pitch shift and formant shift, independent, no model files.

Pitch: each block's tail is read from the window at `ratio` times the speed, band-limited
(windowed-sinc interpolation whose cut-off follows the ratio), so every tail holds the voice at exactly
`ratio` times its pitch; the converter's SOLA joins consecutive tails where their waveforms line up.
Reading faster moves the formants up with the pitch ("chipmunk"), so:

Formants: the input is filtered, before it is read, by a gain E(v r / f) / E(v) per input frequency v, where E is
the spectral envelope of the input (cepstrally smoothed), r the pitch ratio and f the formant ratio: read at r
times the speed, the formants land at f times their original frequencies whatever the pitch. With f = r nothing
is done (the chipmunk/giant presets cost no FFT). The filter is causal (minimum phase, from the gain's cepstrum),
changes every hop on the stream's own time grid and is crossfaded over the hop, and its envelope is that of the
input before the hop: each filtered sample depends on the input up to it alone. So every block reads the same
filtered signal where it overlaps the last, as the pitch shift needs for SOLA to join them in phase. (The
correction was made on each block's output with one envelope a block, on frames anchored to the block: blocks
overlapped with different spectra, SOLA found no in-phase join on pulse-like voices, and a 100 Hz vowel through
the default profile came out with a 50 Hz buzz, -1.6 dB of its energy between the harmonics.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.signal import lfilter, lfilter_zi

from rtvc.settings import in_range, setting

MAX_SEMITONES = 24.0
FRAME_S = 0.0213  # STFT frame for the envelope (1024 at 48 kHz)
LIFTER_S = 0.0016  # cepstral cut-off for frames with no clear pitch
MAX_LIFTER_S = 0.004  # the longest cut-off (voices below 200 Hz): keeps F1 and F2 apart
ENV_RANGE = 7.0  # nepers (~60 dB) below an envelope's peak count as empty
LOW_VOICE_HZ = 80.0  # a deep speaking voice's low pitch: the search spans the output's period made of it
MAX_SEARCH_S = 0.04  # (at most: half the search adds to the latency)
FOLLOW_S = 0.004  # the level follower's time constant, each of its two stages (as fast as one of 10 ms on onsets)
SMOOTH = 2  # hops whose envelopes the formant filter averages
VOICED = 0.08  # a frame's cepstral peak over this: voiced, at that period
STAY_VOICED = 0.04  # a period found in the hop before is followed while its peak stays over this
FOLLOW_PERIOD = 0.06  # how far (a share of the period) the period followed may move from one hop to the next
KEEP_PERIOD = 0.02  # and how far it may seem to move while it is kept as it was
H1_RANGE = 4.0  # nepers (~35 dB): a voiced frame's first harmonic is within this of its strongest
MAX_GAIN = 3.0  # nepers (~26 dB): the most the formant correction boosts or cuts a band
MAX_BOOST = 3.0  # nepers (~26 dB): the most it boosts a band (1 neper held speech's formants back)
GUARD_S = 0.002  # the replay guard's level window (a 440 Hz tone's period, with room)
PEAK_DB = 1.5  # the peak guard: the filtered input's peaks kept within this of the input's over the last PEAK_S
PEAK_S = 0.02
PEAK_RELEASE_S = 0.02  # seconds a neper: how fast the peak guard's gain comes back


@dataclass(frozen=True)
class PitchParams:
    pitch: float = setting(0.0, "pitch shift in semitones (fractional)", in_range(-MAX_SEMITONES, MAX_SEMITONES))
    formant: float = setting(
        0.0, "formant shift in semitones, independent of pitch (+ smaller, - bigger)", in_range(-12.0, 12.0)
    )
    gain_db: float = setting(0.0, "output gain in dB", in_range(-60.0, 24.0))


class PitchVoice:
    kind: ClassVar[str] = "pitch"
    Params: ClassVar[type] = PitchParams

    @staticmethod
    def least_search(params: PitchParams, samplerate: int) -> int:
        """The SOLA search (device frames) that spans one period of the deepest output this voice makes of a deep
        speaking voice (LOW_VOICE_HZ in) at its profile's pitch: the converter widens stream.search_ms to it. Blocks
        joined with a search shorter than the output's period meet out of phase: Giant (-7) made of an 80 Hz voice,
        53 Hz out, buzzed at 16 ms (-19 dB between the harmonics; -70 at 24 ms: a review). A pitch moved lower live
        keeps the search of the load."""
        lowest = LOW_VOICE_HZ * 2.0 ** (min(params.pitch, 0.0) / 12.0)
        return min(math.ceil(samplerate / lowest), round(MAX_SEARCH_S * samplerate))

    def __init__(self, samplerate: int):
        self.label = "pitch + formant shifter"
        self.samplerate = samplerate
        self.latency = 0
        frame = 1 << round(math.log2(FRAME_S * samplerate))  # 1024 at 48 kHz
        self._hop = frame // 2  # the formant filter changes every hop (10.7 ms at 48 kHz)
        self._taps = self._hop  # its impulse response's length
        # the envelope is analysed on longer input frames: two periods of a 50 Hz voice
        self._env_frame = 2 * frame
        # (a window weighted towards its newest samples, to lag less, moved speech's formants little further and
        # its envelope varied with a tone's phase: a 220 Hz sine's 3rd harmonic at -52 dB, -56 with this one)
        self._env_win = np.hanning(self._env_frame)
        self._peak_w = round(PEAK_S * samplerate)
        self._release = 1.0 / (PEAK_RELEASE_S * samplerate)
        self._quef = np.minimum(np.arange(self._env_frame), self._env_frame - np.arange(self._env_frame))
        self._pitch_range = (round(samplerate / 600), round(samplerate / 50))  # cepstral pitch search (samples)
        self._default_lifter = LIFTER_S * samplerate
        self._max_lifter = MAX_LIFTER_S * samplerate
        self._env_bins = np.arange(self._env_frame // 2 + 1, dtype=np.float64)
        fade = np.ones(self._taps)
        fade[-self._taps // 4 :] = np.hanning(self._taps // 2)[-self._taps // 4 :]
        self._fade = fade  # (the minimum-phase response, cut to its length)
        self._ramp = (np.arange(self._hop) + 0.5) / self._hop  # one hop's filter into the next
        self._t = 0  # the stream's samples so far: the window's end (moved)
        # the filter of each hop (its spectrum) and each whole hop's filtered input (with the level follower's state
        # after it), by the hop's start on the stream's time
        self._filters: dict[int, np.ndarray] = {}
        self._filtered: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        k = math.exp(-1.0 / (FOLLOW_S * samplerate))  # the level follower's pole, twice (a double pole)
        self._follow = ([(1.0 - k) ** 2], [1.0, -2.0 * k, k * k])
        self._follow_zi = lfilter_zi(*self._follow)  # its state under a steady unit energy
        self._looks: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}  # the input's envelope before each hop
        # the replay guard (_replay_gain): the first read of each block (stream time of its first tail frame, the
        # ratio, the block's stream time), and the stream time of the newest input the last block played
        self._read: tuple[float, float, int] | None = None
        self._played: float | None = None
        self._guard_w = max(1, round(GUARD_S * samplerate))
        self._window_id = 0  # the window they were computed from (another converter's: computed again)

    def context_for(self, tail: int) -> int:
        ratio = 2.0 ** (MAX_SEMITONES / 12)
        read = math.ceil(tail * ratio) + 16 + math.ceil(16 * ratio)  # (resample_at's taps and low-pass)
        return read + 2 * self._hop + self._env_frame + self._taps  # (the formant filter's hops before it)

    def moved(self, new: int) -> None:
        """The stream moved on by `new` samples (the converter, once per block, before that block is rendered): the
        formant filter's hops lie on the stream's time, so that every block filters a sample alike."""
        self._t += new

    def reset(self) -> None:
        self._t = 0
        self.reset_filters()

    def reset_filters(self) -> None:
        self._filters.clear()
        self._filtered.clear()
        self._looks.clear()
        self._read = self._played = None

    def joined(self, end: int) -> None:
        """The converter played this block's tail up to frame `end` (its SOLA offset + the block, and the crossfade
        kept for the next block): the newest input heard so far, for the next block's replay guard."""
        if self._read is not None and self._read[2] == self._t:
            start, r, _t = self._read
            self._played = start + (end - 1) * r

    # -- the conversion ---------------------------------------------------------------------------
    def convert(self, window: np.ndarray, tail: int, params: PitchParams) -> np.ndarray:
        r = 2.0 ** (params.pitch / 12.0)
        f = 2.0 ** (params.formant / 12.0)
        # output frame j reads the window at pos[j]; the last output frame is the newest input frame
        pos = (len(window) - 1) - (tail - 1 - np.arange(tail)) * r
        cutoff = min(1.0, 1.0 / r)
        if abs(math.log(r / f)) > 1e-6:
            first = max(0, math.floor(pos[0]) - 17 - math.ceil(16 / cutoff))  # (what resample_at reads)
            src, first = self._formant_filtered(window, first, r, f)
        else:
            src, first = window, 0
        y = resample_at(src, pos - first, cutoff=cutoff)
        base = self._t - len(window)  # the stream's time of window[0]
        if r > 1.0 and self._played is not None:
            y = y * self._replay_gain(src, pos - first, self._played - base - first)
        if self._read is None or self._read[2] != self._t:  # (the block's first read: the one the converter joins)
            self._read = (base + float(pos[0]), r, self._t)
        if params.gain_db:
            y = y * 10.0 ** (params.gain_db / 20.0)
        return y.astype(np.float32)

    def _replay_gain(self, src: np.ndarray, pos: np.ndarray, played: float) -> np.ndarray:
        """A higher pitch reads each block's tail faster than time, ending at the newest input: its head reads input
        the block before played already, (ratio - 1) blocks of it. Where a sound stopped in there (a note cut off, a
        stop consonant) the block before ended in silence and this one played the sound's end again: a 4-6 ms ghost
        at full level after the silence (Chipmunk: 6 of 12 cut-off tones; a review). `src`: what is read (the
        window, or its formant-filtered part: its filter rings on), `pos` and `played` indices into it. The frames
        that read input already played (before `played`) are held to twice the largest |x| of all the input after it
        (a block and more: longer than a low voice's period), each against its own level (over GUARD_S around it):
        a sound that goes on is as loud there as before, and passes; one that stopped is not heard again."""
        again = pos < played
        if not again.any():
            return np.ones(len(pos))
        w, end = self._guard_w, min(max(int(played), 0), len(src) - 1)
        left = float(np.abs(src[end:]).max())
        lo = max(0, int(pos[again].min()) - w)
        level = maximum_filter1d(np.abs(src[lo : end + w + 1]), size=w)
        at = np.clip(np.rint(pos[again]).astype(np.int64) - lo, 0, len(level) - 1)
        gain = np.ones(len(pos))
        gain[again] = np.minimum(1.0, (2.0 * left + 1e-5) / (level[at] + 1e-9))
        return gain

    def _envelope(self, frame: np.ndarray, held: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
        """frame: (2N,) windowed -> (1, N + 1) log-magnitude spectral envelope, the frame's power spectrum, and the
        pitch period it was taken for (samples; 0: unvoiced). `held`: the period of the hop before (0: unvoiced).

        For a voiced frame (a cepstral peak at its pitch period) the log spectrum is first raised to its harmonics'
        peaks (a running maximum one harmonic wide): the valleys between harmonics change with where the window
        falls on the periods, and an envelope through them moved by 1-2 dB from hop to hop on a steady vowel (its
        filter then modulated the voice: a buzz). Then cepstral smoothing, its cut-off 0.55 of the period (at
        most MAX_LIFTER_S): low enough to drop the harmonics, high enough to keep F1 and F2 apart.
        A period once found is followed (the peak within FOLLOW_PERIOD of it, while over STAY_VOICED), and a new one
        needs its first harmonic (_has_fundamental): on a steady tone (a whistle, a held note) the frames' cepstral
        peaks hovered about VOICED and jumped an octave, and the envelope switched between its two forms from hop to
        hop, each another filter: a trembling of 6-18 dB at some pitches (a review; tests/test_pitch_voice.py)."""
        E = self._env_frame
        power = np.abs(np.fft.rfft(frame)) ** 2
        logmag = 0.5 * np.log(power + 1e-18)
        cep = np.fft.irfft(logmag, E)
        lo, hi = self._pitch_range
        peak = lo + int(np.argmax(cep[lo:hi]))  # the pitch period in samples, if voiced
        voiced = cep[peak] > VOICED and self._has_fundamental(logmag, peak)
        if held:
            a, b = max(lo, math.floor(held * (1 - FOLLOW_PERIOD))), min(hi, math.ceil(held * (1 + FOLLOW_PERIOD)) + 1)
            near = a + int(np.argmax(cep[a:b]))
            if cep[near] > STAY_VOICED:  # (a step of a sample or two kept too: it changed the running maximum's width)
                peak, voiced = held if abs(near - held) <= 1 + KEEP_PERIOD * held else near, True
        if voiced:
            cep = np.fft.irfft(maximum_filter1d(logmag, size=max(1, round(E / peak)), mode="nearest"), E)
            cut = min(0.55 * peak, self._max_lifter)
        else:
            cut = self._default_lifter
        env = np.fft.rfft(cep * np.clip(cut - self._quef + 0.5, 0.0, 1.0)).real[None, :]
        # an empty band (nothing above the tone's last harmonic) must not be "restored" by a huge gain
        return np.maximum(env, env.max() - ENV_RANGE), power, peak if voiced else 0

    def _has_fundamental(self, logmag: np.ndarray, period: int) -> bool:
        """Whether the log spectrum has a harmonic at the pitch `period` gives, within H1_RANGE of its peak: a steady
        tone above the pitch search's range (a whistle) has cepstral peaks at some multiple of its period, and was
        taken for a voice an octave or two below it, from hop to hop or not."""
        E = self._env_frame
        f0 = E / period  # (bins)
        a, b = max(0, math.floor(0.85 * f0)), math.ceil(1.15 * f0) + 1
        return bool(logmag[a:b].max() > logmag.max() - H1_RANGE)

    def _formant_filtered(self, window: np.ndarray, first: int, r: float, f: float) -> tuple[np.ndarray, int]:
        """The window filtered by the formant correction from about index `first` to its end, and the index it
        starts at (on the hop grid, at or before `first`). Whole hops are kept for the next blocks."""
        if id(window) != self._window_id:  # (another converter's window: its samples are not those kept)
            self.reset_filters()
            self._window_id = id(window)
        # one filtered signal, each hop filtered with the ratio asked for when it is first needed: a change of pitch or
        # formant reaches the hops that come after it (a fader filtered every hop a block reads again at each of its
        # steps: p99 7-8 ms a block at +24 semitones), and what a block read before stays what the next one reads
        filters, done = self._filters, self._filtered
        hop, end = self._hop, self._t
        base = end - len(window)  # the stream's time of window[0]
        start = (base + first) // hop * hop
        out = np.empty(end - start)
        for s in range(start, end, hop):
            got = done.get(s)
            if got is None:
                got = self._filter_hop(window, base, s, min(hop, end - s), filters, done.get(s - hop), r, f)
                if len(got[0]) == hop:
                    done[s] = got
            out[s - start : s - start + len(got[0])] = got[0]
        # kept for the whole window, not from this block's start on: a block at a higher pitch reads further back
        # than the one before, and hops filtered again there (with the new ratio, the level follower started anew)
        # met those kept at a seam: a click of up to 20x the output's own steps at a jump of -4 to +12 semitones
        for s in [s for s in filters if s < base - hop]:  # (older than any block reads again)
            del filters[s]
        for s in [s for s in done if s < base - hop]:
            del done[s]
        for s in [s for s in self._looks if s < base - SMOOTH * hop]:
            del self._looks[s]
        return out, start - base

    def _filter_hop(
        self, window: np.ndarray, base: int, s: int, m: int, filters: dict, last: tuple | None, r: float, f: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first `m` filtered samples of the hop at stream time `s` (the last hop's filter crossfaded into this
        one's over the hop: overlap-save, one FFT of the input for both), and the level follower's state after them.
        `last`: what this gave for the hop before (None: not kept; the follower then starts at this hop's level)."""
        hop, taps = self._hop, self._taps
        x = _slice(window, s - base - taps + 1, s - base + m)
        spec = np.fft.rfft(x, 2 * hop)
        now, before = (self._filter(window, base, t, filters, r, f) for t in (s, s - hop))
        a = np.fft.irfft(spec * before, 2 * hop)[taps - 1 : taps - 1 + m]
        b = np.fft.irfft(spec * now, 2 * hop)[taps - 1 : taps - 1 + m]
        y = a + self._ramp[:m] * (b - a)
        # the filters keep the energy of the input they were made from (the envelope's frames, before the hop): where
        # the voice changes (an onset, a fricative after a vowel) they boosted the new sound by up to MAX_GAIN. A level
        # follower (energy in and energy out, each smoothed) brings it back, sample by sample, causally
        # Two smoothing stages (a double pole), not one: through one (10 ms) the energies of a low voice rippled at
        # twice its pitch and so did the gain: a 110 Hz tone came out of the default profile with its third harmonic
        # at -38 dB (-45 dB now; 220 Hz: -44, now -57 dB), peaks on speech onsets as they were
        xx = x[taps - 1 :]
        fb, fa = self._follow
        if last is not None:
            zx, zy, held = last[1][:2], last[1][2:4], float(last[1][4])
        else:
            zx = zy = self._follow_zi * (float(np.dot(xx, xx)) / max(m, 1) + 1e-12)
            held = 0.0
        ex, zx = lfilter(fb, fa, xx * xx, zi=zx)
        ey, zy = lfilter(fb, fa, y * y, zi=zy)
        gain = np.sqrt((np.maximum(ex, 0.0) + 1e-12) / (np.maximum(ey, 0.0) + 1e-12))
        np.clip(gain, math.exp(-MAX_GAIN), math.exp(MAX_GAIN), out=gain)
        y = y * gain
        # the peak guard: a boost of up to MAX_BOOST, built from the envelope before the hop, met a new sound (a vowel's
        # onset) with its resonance and the level follower, on energy, let its peaks through (up to 4 dB over the
        # input's on speech). Where a sample would stand over PEAK_DB above the input's peak of the last PEAK_S, its
        # gain (log) falls to keep it there at once, and comes back at a neper per PEAK_RELEASE_S: a running minimum,
        # causal, its state the log gain after the hop
        w = self._peak_w
        px = maximum_filter1d(np.abs(_slice(window, s - base - w + 1, s - base + m)), size=w, origin=(w - 1) // 2)
        want = np.log(np.maximum(px[w - 1 :], 1e-12) * 10.0 ** (PEAK_DB / 20.0) / np.maximum(np.abs(y), 1e-12))
        up = self._release * np.arange(m)
        guard = np.minimum.accumulate(np.minimum(want, 0.0) - up) + up
        guard = np.minimum(np.minimum(guard, held + up + self._release), 0.0)
        if m:
            held = float(guard[-1])
        return y * np.exp(guard), np.concatenate([zx, zy, [held]])

    def _filter(self, window: np.ndarray, base: int, s: int, filters: dict, r: float, f: float) -> np.ndarray:
        """The formant filter from stream time `s` on (its spectrum on 2 hops): from the envelope of the input just
        before `s` (averaged over SMOOTH hops), the gain E(v r / f) / E(v), the energy of those frames kept, as a
        minimum-phase impulse response."""
        got = filters.get(s)
        if got is not None:
            return got
        E, hop = self._env_frame, self._hop
        ends = range(s - (SMOOTH - 1) * hop, s + 1, hop)
        for t in ends:
            if t not in self._looks:
                held = self._looks[t - hop][2] if t - hop in self._looks else 0
                self._looks[t] = self._envelope(_slice(window, t - base - E, t - base) * self._env_win, held)
        env = np.mean([self._looks[t][0] for t in ends], axis=0)
        power = np.mean([self._looks[t][1] for t in ends], axis=0)
        gain = np.clip(_interp_rows(env, self._env_bins * (r / f)) - env, -MAX_GAIN, MAX_BOOST)[0]
        gain += 0.5 * math.log((power.sum() + 1e-30) / max(float((power * np.exp(2 * gain)).sum()), 1e-30))
        cep = np.fft.irfft(gain, E)  # the log gain's cepstrum (even); folded: the minimum-phase filter's
        cep[1 : E // 2] *= 2.0
        cep[E // 2 + 1 :] = 0.0
        h = np.fft.irfft(np.exp(np.fft.rfft(cep)), E)[: self._taps] * self._fade
        filters[s] = got = np.fft.rfft(h, 2 * hop)
        return got


def _slice(x: np.ndarray, a: int, b: int) -> np.ndarray:
    """x[a:b] as float64, zeros where it lies outside x."""
    out = np.zeros(b - a)
    lo, hi = max(a, 0), min(b, len(x))
    if hi > lo:
        out[lo - a : hi - a] = x[lo:hi]
    return out


def _interp_rows(rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row (F, bins) at fractional bin positions `at` (clamped)."""
    at = np.clip(at, 0, rows.shape[1] - 1)
    i = np.minimum(at.astype(np.int64), rows.shape[1] - 2)
    frac = at - i
    return rows[:, i] * (1 - frac) + rows[:, i + 1] * frac


@lru_cache(maxsize=8)
def lowpass_taps(cutoff: float, half: int) -> np.ndarray:
    """(2*half+1,) Hann-windowed sinc low-pass, cut-off in units of Nyquist, unit DC gain."""
    t = np.arange(-half, half + 1)
    h = cutoff * np.sinc(cutoff * t) * (0.5 + 0.5 * np.cos(np.pi * t / (half + 1)))
    return h / h.sum()


_KERNELS: dict[int, np.ndarray] = {}
PHASES = 512  # fractional positions of the interpolation kernel table


def _kernel_table(h: int) -> np.ndarray:
    """(PHASES + 1, 2h) Hann-windowed sinc taps for fractional offsets 0, 1/PHASES, ..., 1."""
    if h not in _KERNELS:
        frac = np.arange(PHASES + 1)[:, None] / PHASES
        t = frac - np.arange(-h + 1, h + 1)[None, :]
        _KERNELS[h] = np.sinc(t) * (0.5 + 0.5 * np.cos(np.pi * t / h))
    return _KERNELS[h]


def resample_at(x: np.ndarray, pos: np.ndarray, cutoff: float, half_taps: int = 8) -> np.ndarray:
    """Band-limited read of x at fractional positions `pos` (cut-off in units of x's Nyquist).
    Below 1 the span read is low-passed first (a linear-phase FIR, so positions are unchanged), then
    read with a short windowed sinc from a table. Positions beyond x's ends read zeros."""
    h = half_taps
    lo = int(np.floor(pos.min())) - h
    hi = int(np.ceil(pos.max())) + h + 1
    seg = np.zeros(hi - lo)
    a, b = max(lo, 0), min(hi, len(x))
    if b > a:
        seg[a - lo : b - lo] = x[a:b]
    if cutoff < 0.999:
        half = math.ceil(2 * h / cutoff)
        seg = np.convolve(seg, lowpass_taps(0.92 * cutoff, half), mode="same")
    p = pos - lo
    base = np.floor(p).astype(np.int64)
    if np.all(p == base):  # integer positions (no pitch shift): a plain copy
        return seg[base]
    kernel = _kernel_table(h)[np.rint((p - base) * PHASES).astype(np.int64)]  # (n, 2h)
    taps = seg[base[:, None] + np.arange(-h + 1, h + 1)[None, :]]  # (n, 2h)
    return np.einsum("ij,ij->i", taps, kernel)
