"""Reading audio files: the WAV header check that tells a truncated file from a whole one, on odd inputs."""

from __future__ import annotations

import os
import struct
import threading

import numpy as np
import soundfile as sf

from rtvc.wavio import wav_declared_frames


def wav(path, frames=4800, **kw):
    sf.write(path, np.zeros(frames, np.float32), 48000, **kw)
    return path


def test_declared_frames_of_whole_cut_and_open_ended_files(tmp_path):
    whole = wav(tmp_path / "a.wav", subtype="FLOAT")
    assert wav_declared_frames(whole) == 4800
    data = whole.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    assert wav_declared_frames(tmp_path / "cut.wav") == 4800  # the header still promises all of it
    at = data.index(b"data")
    for size in (0, 0xFFFFFFFF, 0x7FFFF000):  # lengths left open by writers to a pipe (espeak-ng: 0x7ffff000)
        (tmp_path / "open.wav").write_bytes(data[: at + 4] + struct.pack("<I", size) + data[at + 8 :])
        assert wav_declared_frames(tmp_path / "open.wav") is None
    assert wav_declared_frames(wav(tmp_path / "p.wav", subtype="PCM_16")) == 4800
    assert wav_declared_frames(wav(tmp_path / "x.flac")) is None  # not RIFF/WAVE


def test_a_corrupt_fmt_size_and_a_pipe_give_no_answer_without_harm(tmp_path):
    data = wav(tmp_path / "a.wav").read_bytes()
    at = data.index(b"fmt ")
    huge = data[: at + 4] + struct.pack("<I", 0xFFFFFFF0) + data[at + 8 :]  # no 4 GiB read, no MemoryError
    (tmp_path / "huge.wav").write_bytes(huge)
    assert wav_declared_frames(tmp_path / "huge.wav") is None
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening a pipe with no writer blocks: a pipe is never opened a second time
    answer = []
    t = threading.Thread(target=lambda: answer.append(wav_declared_frames(fifo)), daemon=True)
    t.start()
    t.join(5)
    assert answer == [None]


def test_an_odd_sample_rate_is_resampled_to_the_exact_length_without_a_huge_filter(tmp_path):
    """44101 Hz shares no factor with 48000: exact polyphase resampling would need a million-tap filter (at
    1000003 Hz: seconds and a gigabyte). The ratio is approximated to parts in 10^8, the length is exact."""
    from rtvc.wavio import load_mono

    for sr in (44101, 1000003 // 2, 8000, 1001):
        t = np.arange(sr // 2) / sr  # half a second of 440 Hz
        sf.write(tmp_path / "odd.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, subtype="FLOAT")
        y = load_mono(tmp_path / "odd.wav", 48000)
        assert len(y) == round(len(t) * 48000 / sr)
        spectrum = np.abs(np.fft.rfft(y[2000:-2000] * np.hanning(len(y) - 4000)))
        peak_hz = np.argmax(spectrum) * 48000 / (len(y) - 4000)
        assert abs(peak_hz - 440) < 2.5, (sr, peak_hz)  # (one FFT bin: the pitch is kept)


def test_a_sample_rate_no_audio_has_is_refused(tmp_path):
    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import load_mono

    sf.write(tmp_path / "big.wav", np.zeros(2000, np.float32), 2147483647, subtype="FLOAT")
    with pytest.raises(RtvcError, match="its header says 2147483647 Hz, a sample rate no audio is recorded at"):
        load_mono(tmp_path / "big.wav", 48000)


def test_nan_is_counted_at_the_files_own_rate_and_cancelled_channels_are_said(tmp_path):
    from rtvc.wavio import load_mono

    x = np.full(16000, 0.1, np.float32)
    x[800] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    notes: list[str] = []
    y = load_mono(tmp_path / "nan.wav", 48000, notes)
    assert np.isfinite(y).all()
    assert notes == ["1 NaN/infinite input samples played as silence (the first at 0.050 s)"]
    tone = (0.5 * np.sin(np.arange(48000) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "cancel.wav", np.stack([tone, -tone], axis=1), 48000, subtype="FLOAT")
    notes = []
    assert np.abs(load_mono(tmp_path / "cancel.wav", 48000, notes)).max() == 0.0
    assert len(notes) == 1 and "its 2 channels cancel when mixed to mono" in notes[0], notes


def test_an_output_linked_to_the_input_is_refused(tmp_path):
    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import check_not_same

    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(100, np.float32), 48000)
    os.link(src, tmp_path / "hard.wav")
    with pytest.raises(RtvcError, match="is also the input"):
        check_not_same(src, tmp_path / "hard.wav")
    check_not_same(src, tmp_path / "new.wav")  # (a new file: fine)


def test_flac_is_written_in_24_bits_and_an_output_past_full_scale_is_said(tmp_path):
    from rtvc.wavio import peak_note, save

    y = np.array([0.0, 0.5, -1.5, 2.0], np.float32)
    save(tmp_path / "o.flac", y, 48000)
    assert sf.info(str(tmp_path / "o.flac")).subtype == "PCM_24"
    assert peak_note(y, tmp_path / "o.flac").startswith("the output peaks at +6.0 dBFS (2 samples beyond full scale,")
    assert "clipped in the file" in peak_note(y, tmp_path / "o.flac")
    assert "kept in the float file" in peak_note(y, tmp_path / "o.wav")
    assert peak_note(y / 2, tmp_path / "o.wav") == ""
