"""A voice that consumes one rate and produces another (RVC: 16 kHz in, 32/40/48 kHz out), and the
once-per-block `advance` hook."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from test_converter import NoParams, stream

from rtvc.converter import StreamingConverter, StreamShape
from rtvc.errors import ConfigError
from rtvc.resample import resample_block

SR = 48000


class UpVoice:
    """16 kHz in, `out` Hz out: a band-limited identity, so the whole chain should give the input back."""

    kind: ClassVar[str] = "up"
    Params: ClassVar[type] = NoParams

    def __init__(self, out: int):
        self.label = "up"
        self.samplerate = 16000
        self.out_samplerate = out
        self.latency = 0
        self.advanced: list[int] = []

    def context_for(self, tail: int) -> int:
        return tail + 256

    def advance(self, window, new, params):
        self.advanced.append(new)

    def convert(self, window, tail, params):
        pad = 128
        seg = window[-(tail + pad) :]
        n_out = (tail + pad) * self.out_samplerate // 16000
        return resample_block(seg, 16000, self.out_samplerate, n_out)[n_out - tail * self.out_samplerate // 16000 :]

    def reset(self):
        pass


def tones(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (
        0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1230 * t + 1) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    ).astype(np.float32)


@pytest.mark.parametrize("out", [32000, 40000, 48000])
def test_two_rate_voice_comes_back_aligned_at_the_declared_latency(out):
    voice = UpVoice(out)
    conv = StreamingConverter(voice, NoParams(), StreamShape(SR, 960, crossfade=144, search=384))
    x = tones()
    y = stream(conv, x)
    lat = conv.latency
    ref = x[: len(y) - lat]
    got = y[lat:]
    skip = SR // 10  # the resamplers' start-up
    err = got[skip:] - ref[skip:]
    snr = 10 * np.log10(np.sum(ref[skip:] ** 2) / np.sum(err**2))
    assert snr > 50, snr
    assert voice.advanced == [320] * (len(x) // 960)  # once per block, with the new 16 kHz frames


def test_block_must_be_whole_frames_of_both_rates():
    # 48 kHz against 16 kHz in and 40 kHz out: whole steps of lcm(3, 6) = 6 device frames (0.125 ms)
    with pytest.raises(ConfigError, match=r"crossfade .*\(16000 Hz in, 40000 Hz out.*multiples of 0.125 ms\)\)$"):
        StreamingConverter(UpVoice(40000), NoParams(), StreamShape(SR, 960, crossfade=147, search=384))
    # 44.1 kHz: steps of 10 ms; config.toml's crossfade (3 ms) and search (8 ms) are both off, named in one error
    with pytest.raises(ConfigError) as e:
        StreamingConverter(UpVoice(48000), NoParams(), StreamShape(44100, 882, crossfade=132, search=353))
    assert str(e.value) == (
        "stream crossfade 132 frames (2.99 ms), search 353 frames (8.00 ms): not a whole number of the voice's "
        "frames (16000 Hz in, 48000 Hz out, against the device's 44100 Hz: steps of 10 ms) (set "
        "stream.crossfade_ms = 10, stream.search_ms = 10 (multiples of 10 ms), or audio.samplerate = 48000 (steps "
        "of 0.0625 ms))"
    )


def test_a_voice_that_works_in_10_ms_frames_is_named_with_the_grid_in_one_error():
    """RVC voices need whole 10 ms blocks. At 48 kHz, block_ms = 12.3 was told "set stream.block_ms = 12.3125
    (multiples of 0.0625 ms)", which the voice then refused ("a multiple of 10"): two errors, the first one wrong."""
    voice = UpVoice(48000)
    voice.frame_ms = 10.0
    with pytest.raises(ConfigError) as e:
        StreamingConverter(voice, NoParams(), StreamShape(SR, 590, crossfade=144, search=768))
    assert str(e.value) == (
        "stream block 590 frames (12.29 ms): not a whole number of the voice's frames (16000 Hz in, 48000 Hz out, "
        "against the device's 48000 Hz: steps of 0.0625 ms; it works in 10 ms frames) (set stream.block_ms = 20 "
        "(multiples of 10 ms))"
    )
    StreamingConverter(voice, NoParams(), StreamShape(SR, 960, crossfade=144, search=768))  # 20 ms: fine
    voice.frame_ms = 0.0  # a voice without frames takes the finer grid
    StreamingConverter(voice, NoParams(), StreamShape(SR, 591, crossfade=144, search=768))
    # at 44.1 kHz a 25 ms block: 30 ms, and no "or audio.samplerate = 48000" (a 25 ms block is refused there too)
    voice.frame_ms = 10.0
    with pytest.raises(ConfigError) as e:
        StreamingConverter(voice, NoParams(), StreamShape(44100, 1102, crossfade=441, search=882))
    assert str(e.value).endswith("(set stream.block_ms = 30 (multiples of 10 ms))"), str(e.value)
