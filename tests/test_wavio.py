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
