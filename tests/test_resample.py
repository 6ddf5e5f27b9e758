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
