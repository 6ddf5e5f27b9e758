"""Audio files in and out: mono float32 at the stream's rate."""

from __future__ import annotations

import os
import stat
from importlib import resources
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from rtvc.errors import RtvcError


def bundled_speech() -> Path:
    """A short espeak-ng speech clip shipped with rtvc (for the no-sound-card run)."""
    return Path(str(resources.files("rtvc") / "data" / "speech.wav"))


def load_mono(path: Path, samplerate: int) -> np.ndarray:
    """Read any file libsndfile reads; mix down to mono; resample (offline, polyphase) to `samplerate`."""
    path = Path(path)
    if not path.exists():
        raise RtvcError(
            f"{path}: file not found",
            "check the path; rtvc reads WAV, FLAC, OGG and the other formats libsndfile reads",
        )
    if path.is_dir():
        raise RtvcError(f"{path}: is a folder, not an audio file", "name a WAV, FLAC or OGG file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise RtvcError(f"cannot read audio file {path}: {e}", "give a WAV/FLAC/OGG file") from None
    promised = wav_declared_frames(path)
    if promised is not None and promised > len(data):
        raise RtvcError(
            f"{path}: truncated: its header promises {promised / sr:.2f} s of audio, it holds {len(data) / sr:.2f} s",
            "copy or export it again (an interrupted download or recording); rtvc does not guess at the rest",
        )
    if len(data) == 0:
        raise RtvcError(f"{path}: holds no audio (0 samples)", "give a file with sound in it")
    x = data.mean(axis=1)
    if sr != samplerate:
        g = gcd(sr, samplerate)
        x = resample_poly(x, samplerate // g, sr // g).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def wav_declared_frames(path: Path) -> int | None:
    """The frames a RIFF/WAVE file's 'data' chunk header declares, or None (not WAV, or a length left open as
    writers to a pipe do: 0, or near 2 or 4 GiB, e.g. espeak-ng's 0x7ffff000). libsndfile reads a truncated WAV
    without a word: this is how to tell."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe was read once already; opening it again would block
            return None
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            align = 0
            while chunk := f.read(8):
                if len(chunk) < 8:
                    return None
                kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if kind == b"fmt ":
                    fmt = f.read(min(size, 16))  # (a corrupt size must not become a huge read)
                    align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes
                elif kind == b"data":
                    open_ended = size == 0 or size >= 0x7FFF0000
                    return size // align if align and not open_ended else None
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None


def _format(path: Path) -> tuple[str, str]:
    """(libsndfile format, subtype) for a file name: 32-bit float where the format has it (WAV, AIFF, ...),
    else the format's own default (FLAC: 24-bit PCM, OGG: Vorbis)."""
    ext = path.suffix[1:].upper()
    if ext not in sf.available_formats():
        raise RtvcError(
            f"{path}: cannot tell an audio format from the name '{path.name}'",
            "end it in .wav, .flac, .ogg or .aiff",
        )
    return ext, "FLOAT" if sf.check_format(ext, "FLOAT") else sf.default_subtype(ext)


def check_output(path: Path, audio: bool = True) -> None:
    """Before the work: the file can be written there (its folder exists or can be made; for audio, the
    name says a format libsndfile writes). Makes the folder."""
    path = Path(path)
    if path.is_dir():
        example = path / ("out.wav" if audio else "report.json")
        raise RtvcError(f"{path}: is a folder", f"name a file in it, e.g. {example}")
    if audio:
        _format(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise RtvcError(f"cannot write {path}: {e.filename} is a file, not a folder", "choose another path") from None
    except OSError as e:
        raise RtvcError(
            f"cannot write {path}: {e.strerror} ({e.filename})", "choose a folder you can write to"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise RtvcError(f"cannot write {path}: its folder is not writable", "choose a folder you can write to")


def check_not_same(src: Path, dst: Path) -> None:
    """Writing the output over the input would lose the input."""
    if Path(dst).exists() and Path(src).resolve() == Path(dst).resolve():
        raise RtvcError(f"{dst} is also the input: writing it would destroy the original", "name another output file")


def save(path: Path, x: np.ndarray, samplerate: int) -> None:
    path = Path(path)
    check_output(path)
    fmt, subtype = _format(path)
    try:
        sf.write(str(path), x, samplerate, subtype=subtype, format=fmt)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise RtvcError(f"cannot write {path}: {e}", "check the folder's space and permissions") from None


def silence_nonfinite(x: np.ndarray, samplerate: int) -> str:
    """NaN or infinite samples (a damaged float file) become silence, in place, as they do live; returns what to
    tell the user ("" when there were none). A model would spread one NaN over the whole output."""
    bad = ~np.isfinite(x)
    n = int(np.count_nonzero(bad))
    if not n:
        return ""
    first = int(np.argmax(bad))
    x[bad] = 0.0
    return f"{n} NaN/infinite input samples played as silence (the first at {first / samplerate:.3f} s)"
