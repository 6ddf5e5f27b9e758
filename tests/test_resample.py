"""Streaming resampling between the device rate and a voice's rate: state carries across blocks."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from test_converter import NoParams, edge_residual_db, sine, stream

from rtvc.converter import StreamingConverter, StreamShape
from rtvc.errors import ConfigError
from rtvc.resample import StreamResampler, resample_block

RATES = [(48000, 16000), (48000, 40000), (48000, 32000), (16000, 48000), (44100, 48000), (48000, 44100)]


@pytest.mark.parametrize(("src", "dst"), RATES)
@pytest.mark.parametrize("chunks", [[64], [65], [128], [480], [960], [8193], "random"])
def test_chunked_equals_whole(src, dst, chunks):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, 3 * src // 2).astype(np.float32)
    whole = StreamResampler(src, dst).process(x)
    r = StreamResampler(src, dst)
    sizes = rng.integers(1, 1000, size=10_000) if chunks == "random" else np.full(10_000, chunks[0])
    parts, pos = [], 0
    for s in sizes:
        if pos >= len(x):
            break
        parts.append(r.process(x[pos : pos + s]))
        pos += s
    y = np.concatenate(parts)
    assert len(y) == len(whole) == -(-len(x) * dst // src)
    np.testing.assert_array_equal(y, whole)


@pytest.mark.parametrize(("src", "dst"), RATES)
def test_a_sine_comes_out_as_the_same_sine_delayed(src, dst):
    f = 1000.0
    x = np.sin(2 * np.pi * f * np.arange(src) / src).astype(np.float32)
    r = StreamResampler(src, dst)
    y = r.process(x)
    t = np.arange(len(y)) / dst - r.delay / src
    np.testing.assert_allclose(y[200:], np.sin(2 * np.pi * f * t[200:]), atol=2e-4)
    yb = resample_block(x, src, dst, len(y))
    t0 = np.arange(len(yb)) / dst
    np.testing.assert_allclose(yb[200:-200], np.sin(2 * np.pi * f * t0[200:-200]), atol=2e-4)


class Identity16k:
    """An unchanged voice that runs at 16 kHz (as HuBERT-based voices take their input)."""

    kind: ClassVar[str] = "identity16k"
    Params: ClassVar[type] = NoParams

    def __init__(self):
        self.label, self.samplerate, self.latency = "identity at 16 kHz", 16000, 0

    def context_for(self, tail):
        return tail

    def convert(self, window, tail, params):
        return window[-tail:]

    def reset(self):
        pass


def test_a_voice_at_another_rate_joins_without_edges_and_at_the_declared_latency():
    shape = StreamShape(48000, 960, crossfade=192, search=384)
    conv = StreamingConverter(Identity16k(), NoParams(), shape)
    x = sine(440.0)
    y = stream(conv, x)
    assert edge_residual_db(y, 960) < -50.0
    lat = conv.latency
    assert lat == 48 + 192 + 192  # the input resampler's delay + crossfade + search / 2
    np.testing.assert_allclose(y[lat + 4800 :], x[4800 : len(y) - lat], atol=1e-3)


def test_lengths_that_do_not_fit_the_voice_rate_are_refused():
    with pytest.raises(
        ConfigError, match=r"stream block 961 frames .* \(set stream.block_ms = 20.0625 \(multiples of 0.0625 ms\)\)"
    ):
        StreamingConverter(Identity16k(), NoParams(), StreamShape(48000, 961, 192, 384))


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (48000, 40000), (16000, 48000)])
def test_prime_is_process_in_one_pass(src, dst):
    """A voice switched to takes the engine's input history through its resampler in one pass (prime): the
    output, and the state the next block streams on from, are those of process() on the same input."""
    rng = np.random.default_rng(1)
    for n in (0, 5, 960, 50880):  # (5: fewer than the filter's taps of history)
        x, more = rng.standard_normal(n).astype(np.float32), rng.standard_normal(999).astype(np.float32)
        streamed, primed = StreamResampler(src, dst), StreamResampler(src, dst)
        primed.process(rng.standard_normal(77).astype(np.float32))  # (prime starts from the start, as after reset)
        np.testing.assert_array_equal(primed.prime(x), streamed.process(x))
        np.testing.assert_array_equal(primed.process(more), streamed.process(more))


@pytest.mark.parametrize("to", ["16k", "pitch"])
def test_a_voice_switched_to_across_rates_is_primed_with_the_input_before(to):
    """A voice switch hands the new converter the engine's input history (device rate); through its resampler where
    its voice runs at another rate. Its window and its voice's time are then those of a converter that ran since
    the oldest input handed on (the pitch voice's formant filter lies on that time). Across rates it started from
    an empty window: a pitch voice after an RVC voice read silence (its formant filter's burst), an RVC voice heard
    its first second half silent."""
    from rtvc.converter import MIXED, InputHistory
    from rtvc.voices.pitch import PitchParams, PitchVoice

    shape = StreamShape(48000, 960, crossfade=192, search=384)

    def make(kind: str) -> StreamingConverter:
        if kind == "16k":
            return StreamingConverter(Identity16k(), NoParams(), shape)
        return StreamingConverter(PitchVoice(48000), PitchParams(pitch=-4.0, formant=-1.5), shape)

    x = sine(220.0, seconds=2.0)
    old, new, ref = make("pitch" if to == "16k" else "16k"), make(to), make(to)
    history = InputHistory(72000, 960)
    for b in range(0, 90 * 960, 960):
        old.process_block(x[b : b + 960])
        if b >= 90 * 960 - new.history:
            ref.process_block(x[b : b + 960])
        history.push(x[b : b + 960])
    assert len(history.last(new.history)) == new.history < 72000
    assert new.continue_from(old, history.last(new.history)) == MIXED  # (different rates: crossfaded over the block)
    new.process_block(x[90 * 960 : 91 * 960])
    ref.process_block(x[90 * 960 : 91 * 960])
    np.testing.assert_allclose(new._window, ref._window, atol=1e-6)
    if to == "pitch":
        assert new.voice._t == ref.voice._t


def test_the_input_history_keeps_the_newest_blocks_in_order():
    from rtvc.converter import InputHistory

    h = InputHistory(2500, 1000)  # (whole blocks: 3000)
    assert h.frames == 3000 and not h.last(5000).any()
    blocks = [np.full(1000, k, np.float32) for k in range(1, 6)]
    for b in blocks:
        h.push(b)
    np.testing.assert_array_equal(h.last(3000), np.concatenate(blocks[2:]))
    np.testing.assert_array_equal(h.last(1500), np.concatenate(blocks[3:])[-1500:])
    h.grow(4500)  # (kept, and room for more)
    assert h.frames == 5000
    np.testing.assert_array_equal(h.last(5000)[-3000:], np.concatenate(blocks[2:]))
    h.push(np.full(1000, 6, np.float32))
    np.testing.assert_array_equal(h.last(4000), np.concatenate([*blocks[2:], np.full(1000, 6, np.float32)]))
    h.clear()
    assert not h.last(5000).any()


@pytest.mark.parametrize(("src", "dst"), RATES)
def test_resample_block_in_pieces_equals_it_at_once(src, dst, monkeypatch):
    """resample_block computes its outputs in pieces (its (outputs, taps) arrays for a 3-minute file at once were
    gigabytes): the result is the one computed at once, to the bit."""
    import rtvc.resample as resample

    x = np.random.default_rng(3).uniform(-1, 1, src // 2).astype(np.float32)
    n = len(x) * dst // src
    monkeypatch.setattr(resample, "RESAMPLE_PIECE", 1 << 30)
    whole = resample_block(x, src, dst, n)
    monkeypatch.setattr(resample, "RESAMPLE_PIECE", 777)
    pieces = resample_block(x, src, dst, n)
    assert pieces.dtype == np.float32 and len(pieces) == n
    np.testing.assert_array_equal(pieces, whole)
