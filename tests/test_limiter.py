"""The output limiter (rtvc.limiter): nothing beyond full scale plays, nothing within it changes, and what is
lowered is lowered smoothly (the sound, measured against clipping it flat)."""

from __future__ import annotations

import numpy as np
import pytest

from rtvc.limiter import MAX_REDUCTION_DB, RELEASE_DB_S, Limiter
from rtvc.tui.meter import HOLD_S, LevelMeter

SR, BLOCK = 48000, 960


def through(lim: Limiter, x: np.ndarray, block: int = BLOCK) -> np.ndarray:
    return np.concatenate([lim.process(x[i : i + block]) for i in range(0, len(x), block)])


def tone(seconds: float, amp: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def between_harmonics_db(y: np.ndarray, hz: float) -> float:
    """Energy off the tone's harmonics (distortion that is not a harmonic: intermodulation, the limiter's own
    modulation) and on its harmonics above the fundamental, against the fundamental's, in dB."""
    w = np.hanning(len(y))
    p = np.abs(np.fft.rfft(y * w)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    fund = p[np.abs(f - hz) < 15].sum()
    return 10 * np.log10((p.sum() - fund) / fund)


def test_within_full_scale_every_block_passes_as_it_is():
    """Noise up to full scale (the engine's exact-passthrough tests use it): the very same arrays come out."""
    lim = Limiter(SR, BLOCK)
    x = np.random.default_rng(1).uniform(-1, 1, 50 * BLOCK).astype(np.float32)
    x[7] = 1.0
    for i in range(0, len(x), BLOCK):
        b = x[i : i + BLOCK]
        assert lim.process(b) is b
    assert lim.limited_blocks == 0 and lim.reduction_db == 0.0


def test_a_tone_beyond_full_scale_is_lowered_to_it_with_far_less_distortion_than_clipping():
    x = tone(1.0, 2.0)  # +6 dBFS
    y = through(Limiter(SR, BLOCK), x)
    assert np.abs(y).max() <= 1.0
    steady = y[SR // 4 :]
    assert 20 * np.log10(np.abs(steady).max()) > -0.1  # lowered just to full scale, not under it
    limited, clipped = between_harmonics_db(steady, 220.0), between_harmonics_db(np.clip(x, -1, 1)[SR // 4 :], 220.0)
    assert limited < -40.0 and clipped > -15.0, (limited, clipped)


def test_the_gain_comes_back_at_the_release_rate_and_then_the_output_is_exact_again():
    loud, quiet = tone(0.5, 2.0), tone(1.0, 0.5)
    lim = Limiter(SR, BLOCK)
    y = through(lim, np.concatenate([loud, quiet]))
    after = y[len(loud) :]
    back_s = 6.02 / RELEASE_DB_S  # 6 dB to give back
    at = int(0.5 * back_s * SR)
    half = 20 * np.log10(np.abs(after[at : at + 480]).max() / 0.5)
    assert -3.5 < half < -2.0, half  # half-way back, in dB
    done = int(back_s * SR) + BLOCK  # (the first whole block after it)
    start = -(-done // BLOCK) * BLOCK
    np.testing.assert_array_equal(after[start:], np.concatenate([loud, quiet])[len(loud) + start :])
    b = quiet[:BLOCK].copy()
    assert lim.process(b) is b and lim.reduction_db == 0.0


def test_a_peak_inside_a_block_is_approached_smoothly_and_one_at_its_start_at_once():
    x = tone(0.02, 0.5)
    x[600] = 1.6  # a click-like peak, +4 dB
    lim = Limiter(SR, BLOCK)
    y = lim.process(x.copy())
    g = y / np.where(x == 0, 1, x)
    assert abs(y[600]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(y[:500], x[:500], rtol=1e-6)  # untouched until the ramp (4 dB at 6 dB/ms: 33 frames)
    ramp = g[560:601][x[560:601] != 0]
    assert np.all(np.diff(ramp) <= 1e-6) and ramp[0] > 0.99  # it goes down before the peak, never up
    assert lim.reduction_db == pytest.approx(20 * np.log10(1 / 1.6), abs=0.01)
    x2 = tone(0.02, 0.5)
    x2[0] = 1.6  # at the start of a block: the ramp would have had to start in the block that played
    y2 = Limiter(SR, BLOCK).process(x2)
    assert abs(y2[0]) <= 1.0


def test_the_engine_limits_what_plays_and_says_so(tmp_path):
    from rtvc.audio.virtual import VirtualDevice
    from rtvc.converter import StreamingConverter, StreamShape
    from rtvc.engine import Engine
    from rtvc.run import report
    from rtvc.voices.passthrough import PassthroughParams, PassthroughVoice

    shape = StreamShape(SR, 480, crossfade=0, search=0)
    conv = StreamingConverter(PassthroughVoice(SR), PassthroughParams(gain_db=12.0), shape)
    engine = Engine(conv, SR, headroom=192, voice_label="passthrough")
    x = tone(0.5, 0.5)  # -6 dBFS, +12 dB of gain: +6 dBFS
    dev = VirtualDevice(engine, x, 256, paced=False)
    engine.start()
    dev.start()
    dev.join(60)
    engine.stop()
    y = dev.recording
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99
    st = engine.status()
    assert st.levels.limit_db == pytest.approx(-6.0, abs=0.2) and st.limited_blocks >= 40
    assert "limiting 6.0 dB" in st.line()
    assert "went beyond full scale and were lowered" in report(st) and "lower the voice's gain_db" in report(st)


def test_the_tui_meter_shows_what_the_limiter_took_off_for_a_while():
    now = [100.0]
    m = LevelMeter("out", lambda: now[0])
    m.set_level(-0.0, -4.23)
    m.set_level(-0.0, -1.0)  # (the most within the hold is shown)
    assert "limit -4.2" in m.render().plain
    now[0] += HOLD_S + 0.1
    m.set_level(-3.0, 0.0)
    assert "limit" not in m.render().plain and "-3.0 dBFS" in m.render().plain


def test_blocks_are_counted_where_they_went_beyond_full_scale_not_while_the_gain_comes_back():
    """A single +12 dB sample counted 31 blocks (its release), and the report said 0.3 s "would have clipped"."""
    x = tone(1.0, 0.5)
    x[4000] = 2.0
    lim = Limiter(SR, 480)
    through(lim, x, 480)
    assert lim.limited_blocks == 1


def test_a_sample_far_beyond_any_voice_is_cut_not_a_duck_of_seconds():
    """One sample of 1e30 (a model's glitch) took the gain down 599 dB: 15 s back at 40 dB/s. At most 40 dB off, and
    the sample itself cut at full scale."""
    for spike in (1e6, 1e30, np.finfo(np.float32).max, np.inf):
        x = tone(2.0, 0.5)
        x[1000] = spike
        lim = Limiter(SR, BLOCK)
        y = through(lim, x)
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0, spike
        back = int((MAX_REDUCTION_DB / RELEASE_DB_S + 0.05) * SR)
        np.testing.assert_array_equal(y[back + BLOCK :], x[back + BLOCK :])  # (exact again, a block after)
