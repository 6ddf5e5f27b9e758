"""Audio files in and out: mono float32 at the stream's rate."""

from __future__ import annotations

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
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise RtvcError(f"cannot read audio file {path}: {e}", "give a WAV/FLAC/OGG file") from None
    x = data.mean(axis=1)
    if sr != samplerate:
        g = gcd(sr, samplerate)
        x = resample_poly(x, samplerate // g, sr // g).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def save(path: Path, x: np.ndarray, samplerate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, samplerate, subtype="FLOAT")
