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
    assert "kept in the file" in peak_note(y, tmp_path / "o.wav")
    assert peak_note(y / 2, tmp_path / "o.wav") == ""


def test_a_failed_write_leaves_the_file_there_as_it_was(tmp_path):
    """A full disk (here a file-size limit) while writing the output: the file there before was cut to what fitted
    (12780 of 48000 samples in a helper's run), or a new one was left half-written. Now nothing of the failed write
    stays, the old file is whole, and the error says so."""
    import subprocess
    import sys

    out = tmp_path / "keep.wav"
    sf.write(out, np.full(1000, 0.25, np.float32), 48000, subtype="FLOAT")
    before = out.read_bytes()
    script = (
        "import resource, signal, sys, numpy as np\n"
        "from rtvc.errors import RtvcError\n"
        "from rtvc.wavio import save\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # (a write past the limit fails with EFBIG instead)
        "resource.setrlimit(resource.RLIMIT_FSIZE, (50000, 50000))\n"
        "try:\n"
        "    save(sys.argv[1], np.zeros(48000, np.float32), 48000)\n"
        "except RtvcError as e:\n"
        "    print(e)\n"
    )
    for target in (out, tmp_path / "new.wav"):
        done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and f"cannot write {target}" in done.stdout, (done.stdout, done.stderr)
        assert ("the file there before is unchanged" in done.stdout) == (target == out), done.stdout
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_a_format_that_cannot_hold_the_rate_is_refused_before_the_work(tmp_path):
    """.xi and .wve files are written at a rate of their own (44100, 8000 Hz): 48 kHz audio played slow and low,
    said nowhere; MP3 stops at 48 kHz, found after the whole conversion (and the file there emptied)."""
    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import check_output, save

    for name, rate in (("a.xi", 48000), ("a.wve", 48000)):
        with pytest.raises(RtvcError, match=r"is written at \d+ Hz whatever the audio's rate.*wrong speed"):
            check_output(tmp_path / name, samplerate=rate)
    if "MP3" in sf.available_formats():
        (tmp_path / "t.mp3").write_bytes(b"an older mp3")
        with pytest.raises(RtvcError, match=r"a \.mp3 file of 96000 Hz audio cannot be written.*48000 or less"):
            save(tmp_path / "t.mp3", np.zeros(96000, np.float32), 96000)
        assert (tmp_path / "t.mp3").read_bytes() == b"an older mp3"
    for name in ("a.wav", "a.flac", "a.ogg", "a.aiff", "a.raw"):  # (.raw keeps no rate)
        check_output(tmp_path / name, samplerate=48000)
    # a refused output leaves none of the folders made for it (the probe needs its folder)
    with pytest.raises(RtvcError, match="wrong speed"):
        check_output(tmp_path / "new" / "a" / "b" / "x.xi", samplerate=48000)
    assert not (tmp_path / "new").exists()
    # .sd2: its audio is in a '._' file beside it, which the rename into place left behind (the file unreadable)
    with pytest.raises(RtvcError, match="rtvc does not write Sound Designer II files"):
        check_output(tmp_path / "a.sd2", samplerate=48000)
    check_output(tmp_path / "a.sds", samplerate=44100)  # (its header says 44101: a rounding, not another speed)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # (the probes are gone)
    save(tmp_path / "a.flac", np.zeros(480, np.float32), 48000)
    assert sf.info(str(tmp_path / "a.flac")).samplerate == 48000
    # names libsndfile takes no format from, for formats it writes (a review: .aif refused, "cannot tell")
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
    for name, fmt, subtype in (("a.aif", "AIFF", "FLOAT"), ("a.aifc", "AIFF", "FLOAT"), ("a.opus", "OGG", "OPUS")):
        save(tmp_path / name, tone, 48000)
        info = sf.info(str(tmp_path / name))
        assert (info.format, info.subtype, info.samplerate) == (fmt, subtype, 48000), (name, info)
        assert abs(info.frames - 48000) <= 960, (name, info.frames)  # (Opus: whole 20 ms frames)


def test_files_without_permission_are_named_as_such(tmp_path, monkeypatch):
    """An unreadable input said "System error" (libsndfile's words); a read-only output was found after the
    conversion. (os.access is what rtvc asks: the tests run as root, whom permissions do not stop.)"""
    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import check_output, load_mono

    src, dst = wav(tmp_path / "in.wav"), wav(tmp_path / "out.wav")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(RtvcError, match=r"in\.wav: permission denied.*chmod u\+r"):
        load_mono(src, 48000)
    with pytest.raises(RtvcError, match=r"out\.wav: the file there is read-only"):
        check_output(dst, samplerate=48000)


def test_a_full_disk_is_named_as_such(tmp_path):
    """A file written to a full disk said "System error." (libsndfile's words for it). A real full disk: an 8 MB
    tmpfs, and a minute of noise: 11.5 MB as WAV, more than 8 MB as FLAC too (encoded in memory first, its size is
    then known: a review found it said "System error." where the disk had a few MB free before the write)."""
    import subprocess

    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import save

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (not root, or no mount in this container): {mounted}")
    try:
        (disk / "before.wav").write_bytes(b"kept")
        x = (0.3 * np.random.default_rng(1).standard_normal(48000 * 60)).astype(np.float32)  # (FLAC: no silence)
        for name, takes in (("out.wav", ", the file takes 11.5 MB)"), ("before.wav", ", the file takes 11.5 MB)"),
                            ("out.flac", ", the file takes 8.4")):  # fmt: skip
            with pytest.raises(RtvcError) as e:
                save(disk / name, x, 48000)
            said = str(e.value)
            assert f"cannot write {disk / name}: the disk filled up (8." in said, said
            assert f" MB free in {disk} without its part written{takes}" in said, said  # (FLAC: 8.4x MB)
            assert ("the file there before is unchanged" in said) == (name == "before.wav"), said
        assert sorted(p.name for p in disk.iterdir()) == ["before.wav"]  # nothing half-written left
        assert (disk / "before.wav").read_bytes() == b"kept"
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_an_output_that_is_no_regular_file_is_written_into_not_replaced(tmp_path):
    """--report-json into a FIFO (a reader waiting on it): the atomic write replaced the FIFO with a file, and
    the reader waited for ever. A target that is no regular file is written into, as before."""
    import json

    from rtvc.wavio import replace_whole

    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    replace_whole(fifo, lambda p: p.write_text(json.dumps({"state": "stopped"})), str(fifo))
    reader.join(10)
    assert got == ['{"state": "stopped"}'] and not fifo.is_file() and fifo.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_an_output_name_near_the_limit_is_written_and_one_past_it_is_refused(tmp_path):
    """The temporary names beside the output were its name + ~17 bytes: a legal 250-byte name (80 CJK characters)
    failed with a traceback ("File name too long" from the probe), and a name past 255 bytes too (from a stat)."""
    import pytest

    from rtvc.errors import RtvcError
    from rtvc.wavio import check_output, save

    for name in ("b" * 246 + ".wav", "声" * 80 + ".wav"):
        assert len(os.fsencode(name)) in (250, 244)
        save(tmp_path / name, np.zeros(480, np.float32), 48000)
        assert sf.info(str(tmp_path / name)).frames == 480
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["b" * 246 + ".wav", "声" * 80 + ".wav"])
    with pytest.raises(RtvcError, match=r"the file name is 259 bytes long; names are 255 bytes at most"):
        check_output(tmp_path / ("c" * 255 + ".wav"), samplerate=48000)


def test_a_silent_channel_is_left_out_of_the_mix_and_lossy_outputs_keep_their_peaks(tmp_path):
    """A one-microphone recording on a two-channel interface (speech left, nothing right) came out 6 dB down; an
    .ogg or .mp3 output beyond full scale was said "clipped in the file" (the codecs decode to float: it was not)."""
    from rtvc.wavio import load_mono, peak_note

    tone = (0.5 * np.sin(np.arange(48000) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "left.wav", np.stack([tone, np.zeros_like(tone)], axis=1), 48000, subtype="FLOAT")
    notes: list[str] = []
    np.testing.assert_array_equal(load_mono(tmp_path / "left.wav", 48000, notes), tone)
    assert notes == ["channel(s) 2 of 2 silent: left out of the mix"], notes
    both = np.stack([tone, 0.5 * tone], axis=1)  # (two channels with sound: mixed as they were)
    sf.write(tmp_path / "both.wav", both, 48000, subtype="FLOAT")
    notes = []
    np.testing.assert_allclose(load_mono(tmp_path / "both.wav", 48000, notes), 0.75 * tone, atol=1e-7)
    assert notes == []
    y = np.array([0.0, 2.0], np.float32)
    for name in ("o.ogg", "o.mp3"):
        if name[2:].upper() in sf.available_formats():
            assert "kept in the file" in peak_note(y, tmp_path / name), name


def test_a_minute_of_compressed_output_is_written_whole(tmp_path):
    """`rtvc convert speech.wav out.ogg` on a minute of audio ended in a segfault: libsndfile's Vorbis encoder,
    given it in one write, crashed the process (30 s passed). Run in a child, so that a crash fails this test, not
    the suite; each format is read back whole and alike."""
    import subprocess
    import sys

    x = (0.3 * np.sin(np.arange(48000 * 70) * 0.03)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    names = [n for n in ("o.ogg", "o.opus", "o.mp3", "o.flac") if sf.check_format(*_fmt(n))]
    child = (
        "import sys, numpy as np; from pathlib import Path; from rtvc.wavio import save\n"
        "x = np.load(sys.argv[1])\n"
        "for name in sys.argv[2:]: save(Path(name), x, 48000)\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path / "x.npy"), *(str(tmp_path / n) for n in names)])
    assert done.returncode == 0, f"writing {names} ended with {done.returncode} (-11: a segfault)"
    for name in names:
        y, sr = sf.read(tmp_path / name, dtype="float32")
        assert sr == 48000 and abs(len(y) - len(x)) < 4800, (name, len(y))
        mid = slice(48000 * 30, 48000 * 40)  # (the codecs' delay: a lag found by correlation)
        lag = int(np.argmax(np.correlate(y[48000 * 30 : 48000 * 30 + 4000], x[48000 * 30 : 48000 * 30 + 2000])))
        assert np.corrcoef(y[mid.start + lag : mid.stop + lag], x[mid])[0, 1] > 0.99, name


def _fmt(name):
    return {"ogg": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC",)}[
        name.split(".")[1]
    ]
