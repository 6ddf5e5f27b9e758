"""The streaming converter: chunk invariance with linear voices, no artefacts at block edges, no click
when parameters change live."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from scipy.signal import butter, lfilter, sosfiltfilt

from rtvc.converter import StreamingConverter, StreamShape
from rtvc.errors import ConfigError
from rtvc.voices.none import NoParams  # (a voice without parameters: the daemon's no-voice state has one)
from rtvc.voices.passthrough import PassthroughParams, PassthroughVoice
from rtvc.voices.pitch import PitchParams, PitchVoice

SR = 48000


class FirVoice:
    """A fixed linear filter: a real voice whose offline output is known exactly."""

    kind: ClassVar[str] = "fir"
    Params: ClassVar[type] = NoParams

    def __init__(self, taps: np.ndarray):
        self.taps = taps
        self.label = "fir"
        self.samplerate = SR
        self.latency = 0

    def context_for(self, tail: int) -> int:
        return tail + len(self.taps)

    def convert(self, window, tail, params):
        return lfilter(self.taps, [1.0], window)[-tail:].astype(np.float32)

    def reset(self):
        pass


def stream(conv: StreamingConverter, x: np.ndarray) -> np.ndarray:
    b = conv.block
    return np.concatenate([conv.process_block(x[i : i + b]) for i in range(0, len(x) - b + 1, b)])


@pytest.mark.parametrize("block", [64, 65, 128, 480, 960, 8193])
@pytest.mark.parametrize("kind", ["identity", "fir"])
@pytest.mark.parametrize("search", [384, 353])  # 353: 8 ms at 44.1 kHz
def test_streamed_equals_offline_delayed_by_the_declared_latency(block, kind, search):
    rng = np.random.default_rng(block)
    x = rng.uniform(-0.9, 0.9, 3 * SR).astype(np.float32)
    if kind == "identity":  # an identity that goes through SOLA (passthrough itself skips it)
        voice, params, offline = FirVoice(np.array([1.0])), NoParams(), x
    else:
        taps = rng.standard_normal(63) / 8
        voice, params, offline = FirVoice(taps), NoParams(), lfilter(taps, [1.0], x)
    shape = StreamShape(SR, block, crossfade=min(block, 192), search=search)
    conv = StreamingConverter(voice, params, shape)
    y = stream(conv, x)
    lat = conv.latency
    assert lat == shape.crossfade + (shape.search + 1) // 2
    assert np.all(np.abs(y[:lat]) <= 1e-6)
    err = np.abs(y[lat:] - offline[: len(y) - lat])
    assert err.max() <= 1e-6, err.max()


def test_passthrough_skips_sola_and_adds_no_delay():
    conv = StreamingConverter(PassthroughVoice(SR), PassthroughParams(), StreamShape(SR, 480, 192, 384))
    assert conv.latency == 0
    x = np.random.default_rng(0).uniform(-1, 1, SR).astype(np.float32)
    np.testing.assert_array_equal(stream(conv, x), x[: len(x) // 480 * 480])


def test_a_passthrough_gain_change_glides_instead_of_stepping():
    """passthrough takes no SOLA crossfade: a new gain took effect in one sample at the block edge (+12 dB on a
    0.5 sine: a 0.86 step, a click; a fader's changes a zipper). It glides over 5 ms, then holds."""
    conv = StreamingConverter(PassthroughVoice(SR), PassthroughParams(), StreamShape(SR, 960, 192, 384))
    x = sine(221.25, 1.0)  # (at the changes' block edges its phase is 90 and 225 degrees: a step would be large)
    b, out = conv.block, []
    for k, i in enumerate(range(0, len(x) - b + 1, b)):
        if k in (10, 25):
            conv.set_params(PassthroughParams(gain_db=12.0 if k == 10 else -24.0))
        out.append(conv.process_block(x[i : i + b]))
    y = np.concatenate(out)
    steepest = np.abs(np.diff(x)).max()  # the sine's own largest step
    assert np.abs(np.diff(y)).max() < 4.5 * steepest, np.abs(np.diff(y)).max() / steepest  # (x 3.98 at most: +12 dB)
    g12, g24 = 10 ** (12 / 20), 10 ** (-24 / 20)
    np.testing.assert_allclose(y[10 * b + 240 : 25 * b], g12 * x[10 * b + 240 : 25 * b], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[25 * b + 240 :], g24 * x[25 * b + 240 : len(y)], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y[: 10 * b], x[: 10 * b])  # (unity until the change: the samples themselves)


def test_a_passthrough_gain_glide_spans_blocks_shorter_than_it():
    """With 1 ms blocks the glide was one block long (the gain there in 1 ms, not 5): it carries over blocks."""
    conv = StreamingConverter(PassthroughVoice(SR), PassthroughParams(), StreamShape(SR, 48, 0, 0))
    x = np.full(SR // 10, 0.25, np.float32)
    out = []
    for k, i in enumerate(range(0, len(x), 48)):
        if k == 20:
            conv.set_params(PassthroughParams(gain_db=12.0))
        out.append(conv.process_block(x[i : i + 48]))
    gain = np.concatenate(out)[20 * 48 :] / 0.25
    ramp = 240  # 5 ms at 48 kHz
    np.testing.assert_allclose(gain[:ramp], 1 + (10**0.6 - 1) * np.arange(1, ramp + 1) / ramp, rtol=1e-5)
    np.testing.assert_allclose(gain[ramp:], 10**0.6, rtol=1e-6)


def test_the_shape_is_validated():
    with pytest.raises(ConfigError, match=r"crossfade_ms \(5 ms\) is longer than the block \(2 ms\)"):
        StreamingConverter(PassthroughVoice(SR), PassthroughParams(), StreamShape(SR, 96, 240, 0))


def sine(f: float, seconds: float = 2.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


HP = butter(8, 4000, "highpass", fs=SR, output="sos")


def edge_residual_db(y: np.ndarray, block: int, skip: int = 4, only: range | None = None) -> float:
    """Artefacts at block edges: RMS of the output above 4 kHz (where a sine below 1 kHz has nothing)
    within ±32 frames of each block boundary (or of the boundaries of blocks `only`), in dB relative
    to the output's RMS."""
    hp = sosfiltfilt(HP, y.astype(np.float64))
    edges = [k * block for k in only] if only else range(skip * block, len(y) - block, block)
    near = np.concatenate([hp[b - 32 : b + 32] for b in edges])
    return 20 * np.log10(np.sqrt(np.mean(near**2)) / np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-20)


@pytest.mark.parametrize("semitones", [0.0, 5.0])
def test_no_artefacts_at_block_edges(semitones):
    shape = StreamShape(SR, 960, crossfade=192, search=384)
    y = stream(StreamingConverter(PitchVoice(SR), PitchParams(pitch=semitones), shape), sine(220.0))
    assert edge_residual_db(y, 960) < -50.0


def test_the_edge_measure_catches_a_converter_without_crossfade():
    """The same measure on a converter that joins blocks bluntly (no crossfade, no search): a click
    at every block edge."""
    shape = StreamShape(SR, 960, crossfade=0, search=0)
    y = stream(StreamingConverter(PitchVoice(SR), PitchParams(pitch=5.0), shape), sine(220.0))
    assert edge_residual_db(y, 960) > -30.0


def test_a_live_pitch_change_makes_no_click():
    shape = StreamShape(SR, 960, crossfade=192, search=384)
    conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=0.0), shape)
    x = sine(220.0)
    out = []
    for i, b in enumerate(range(0, len(x) - 960 + 1, 960)):
        if i == 40:
            conv.set_params(PitchParams(pitch=5.0))
        if i == 70:
            conv.set_params(PitchParams(pitch=-3.0, formant=2.0))
        out.append(conv.process_block(x[b : b + 960]))
    y = np.concatenate(out)
    assert edge_residual_db(y, 960, only=range(39, 43)) < -45.0
    assert edge_residual_db(y, 960, only=range(69, 73)) < -45.0
    # and the change happened: 220 Hz before, 293.7 Hz after
    spec = np.abs(np.fft.rfft(y[50 * 960 : 66 * 960] * np.hanning(16 * 960)))
    assert abs(np.argmax(spec) * SR / (16 * 960) - 220 * 2 ** (5 / 12)) < 3.0


@pytest.mark.parametrize(("low", "high"), [(-4.0, 12.0), (-12.0, 12.0), (0.0, 16.0)])
def test_a_large_pitch_jump_up_with_the_formants_kept_apart_makes_no_click(low, high):
    """A jump up of 12+ semitones with the formant at another value (the formant filter on) clicked in about half
    the jumps, 17-38 ms after it: a step of up to 20x the output's own (a review under JACK, -4 to +12). A block at a
    higher pitch reads further back than the one before, and the hops filtered there again (with the new ratio, the
    level follower anew) met those kept. The output's largest sample-to-sample step near each jump stays that of the
    steady tone's."""
    shape = StreamShape(SR, 960, crossfade=144, search=768)  # (config.toml's default stream)
    conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=low, formant=-1.5), shape)
    n = 960 * 13 * 12 + 7  # (a jump every 13 blocks, each at another phase of the tone)
    x = (10 ** (-12 / 20) * np.sin(2 * np.pi * 220 * np.arange(n) / SR)).astype(np.float32)
    out, jumps = [], []
    for i, b in enumerate(range(0, n - 960 + 1, 960)):
        if i and i % 13 == 0:
            up = (i // 13) % 2 == 1
            conv.set_params(PitchParams(pitch=high if up else low, formant=-1.5))
            jumps.append(i)
        out.append(conv.process_block(x[b : b + 960]))
    step = np.abs(np.diff(np.concatenate(out)))
    for i in jumps:
        steady = max(step[(i - 6) * 960 : (i - 1) * 960].max(), step[(i + 6) * 960 : (i + 12) * 960].max())
        assert step[i * 960 : (i + 4) * 960].max() < 2.0 * steady, (i, step[i * 960 : (i + 4) * 960].max() / steady)


def test_a_parameter_change_costs_one_render():
    """A change is joined by the crossfade every block gets, not by rendering the block twice: a control
    surface sending 20 changes a second must not double the worker's time on every other block."""
    calls = []

    class Counting(PitchVoice):
        def convert(self, window, tail, params):
            calls.append(params)
            return super().convert(window, tail, params)

    shape = StreamShape(SR, 960, crossfade=144, search=384)
    conv = StreamingConverter(Counting(SR), PitchParams(pitch=0.0), shape)
    x = sine(220.0, 0.5)
    for i, b in enumerate(range(0, len(x) - 960 + 1, 960)):
        if i % 2:
            conv.set_params(PitchParams(pitch=float(i % 5)))
        calls.clear()
        conv.process_block(x[b : b + 960])
        assert len(calls) == 1, (i, calls)
        assert calls[0].pitch == (float(i % 5) if i % 2 else conv.params.pitch)


@pytest.mark.parametrize(("pitch", "formant"), [(-4.0, -1.5), (5.0, 2.5), (12.0, 0.0)])
@pytest.mark.parametrize("off", [True, False])
def test_voice_off_and_on_keep_the_level_over_the_ramp(pitch, formant, off):
    """Voice on/off (bypass) ramps the voice into the dry signal over a block: at another pitch the two are
    uncorrelated, and a linear ramp dipped them 1.9-3.0 dB over 20 ms (2-4 dB over 10 ms) half-way. Equal-power for
    their correlation, as a voice switch."""
    shape = StreamShape(SR, 960, crossfade=144, search=768)
    conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=pitch, formant=formant), shape)
    conv.bypass = not off
    t = np.arange(SR) / SR
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11))
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)
    out = []
    for b in range(0, SR, 960):
        if b == SR // 2:
            conv.bypass = off
        out.append(conv.process_block(x[b : b + 960]))
    y, at = np.concatenate(out), SR // 2

    def rms(a: int, b: int) -> float:  # the lowest level over 20 ms windows in [a, b)
        return min(float(np.sqrt(np.mean(y[i : i + 960] ** 2))) for i in range(a, b, 60))

    dip = 20 * np.log10(rms(at - 2400, at + 2400) / min(rms(at - 9600, at - 4800), rms(at + 4800, at + 9600)))
    assert dip > -1.5, (dip, pitch, formant, off)


def test_bypass_is_ramped_and_exact_once_on():
    shape = StreamShape(SR, 480, crossfade=96, search=192)
    conv = StreamingConverter(PitchVoice(SR), PitchParams(pitch=7.0), shape)
    x = np.random.default_rng(3).uniform(-0.5, 0.5, SR).astype(np.float32)
    out = []
    for i, b in enumerate(range(0, len(x) - 480 + 1, 480)):
        if i == 40:
            conv.bypass = True
        out.append(conv.process_block(x[b : b + 480]))
    y = np.concatenate(out)
    start = 42 * 480  # one block to ramp, one for the SOLA overlap to flush
    # dry again, joined where SOLA found the best fit: the latency is within ±search/2 of the declared (the search
    # as the voice widened it: PitchVoice.least_search)
    half = conv.shape.search // 2
    lags = range(conv.latency - half, conv.latency + half + 1)
    errs = [np.abs(y[start:] - x[start - lag : len(y) - lag]).max() for lag in lags]
    assert min(errs) <= 1e-6, min(errs)


def test_no_voice_plays_silence_with_the_voice_off_too():
    """The daemon's no-voice state (its start profile did not load): voice off (bypass) played the microphone as it
    is, which is what nobody chose; NoVoice has no dry path."""
    from rtvc.voices.none import NoVoice

    shape = StreamShape(samplerate=SR, block=480, crossfade=144, search=96)
    conv = StreamingConverter(NoVoice(SR, "no voice"), NoParams(), shape)
    x = (0.5 * np.sin(2 * np.pi * 220 * np.arange(20 * 480) / SR)).astype(np.float32)
    for k, block in enumerate(x.reshape(-1, 480)):
        conv.bypass = k % 4 >= 2  # (on and off every two blocks, across the ramp)
        assert not conv.process_block(block).any(), k
