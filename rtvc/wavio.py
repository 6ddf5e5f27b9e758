"""Audio files in and out: mono float32 at the stream's rate."""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import os
import shutil
import stat
from fractions import Fraction
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


RATES = (1000, 768000)  # the sample rates a file may declare: outside them its header is wrong
MAX_FACTOR = 10000  # resampling ratios with larger terms are approximated (to parts in 10^8): see _resample
SILENT_CHANNEL_DB = 50.0  # a channel this far below the loudest is left out of the mix to mono (a one-mic recording)
_NAMES = itertools.count()  # temporary files beside an output: short names (the output's may be near 255 bytes)
CANCELLED_DB = 20.0  # a mix-down this far below its loudest channel is reported (channels in opposite phase)


def load_mono(path: Path, samplerate: int, notes: list[str] | None = None) -> np.ndarray:
    """Read any file libsndfile reads; mix down to mono; resample (offline, polyphase) to `samplerate`. NaN and
    infinite samples become silence (a model would spread one NaN over the whole output); what was wrong with
    the file is appended to `notes` (that, and a mix-down its channels cancelled)."""
    path = Path(path)
    if not path.exists():
        raise RtvcError(
            f"{path}: file not found",
            "check the path; rtvc reads WAV, FLAC, OGG and the other formats libsndfile reads",
        )
    if path.is_dir():
        raise RtvcError(f"{path}: is a folder, not an audio file", "name a WAV, FLAC or OGG file")
    if not os.access(path, os.R_OK):  # (libsndfile says only "System error")
        raise RtvcError(f"{path}: permission denied", "give yourself read permission (chmod u+r), or copy it")
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
    if not RATES[0] <= sr <= RATES[1]:
        raise RtvcError(
            f"{path}: its header says {sr} Hz, a sample rate no audio is recorded at ({RATES[0]}-{RATES[1]} Hz)",
            "the header is damaged: export the audio again (48000 Hz is what rtvc runs at)",
        )
    said = silence_nonfinite(data, sr)  # (counted at the file's own rate: resampling would smear a NaN)
    if data.shape[1] > 1:
        # a channel with nothing in it (a one-microphone recording on a two-channel interface) would halve the
        # level of the mix: the channels with sound are mixed
        rms = np.sqrt(np.mean(data.astype(np.float64) ** 2, axis=0))
        sound = rms > rms.max() * 10 ** (-SILENT_CHANNEL_DB / 20)
        if rms.max() > 0 and not sound.all():
            quiet = ", ".join(str(k + 1) for k in np.flatnonzero(~sound))
            said += (", and " if said else "") + f"channel(s) {quiet} of {data.shape[1]} silent: left out of the mix"
            data = data[:, sound]
    x = data.mean(axis=1)
    if data.shape[1] > 1:
        loudest = float(np.sqrt(np.mean(data.astype(np.float64) ** 2, axis=0)).max())
        mixed = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        if loudest > 0 and mixed < loudest * 10 ** (-CANCELLED_DB / 20):
            said += (", and " if said else "") + (
                f"its {data.shape[1]} channels cancel when mixed to mono ({_db(mixed)} dBFS RMS, its loudest "
                f"channel {_db(loudest)}): one is in opposite phase; export one channel to convert it"
            )
    if said and notes is not None:
        notes.append(said)
    if sr != samplerate:
        x = _resample(x, sr, samplerate)
    return np.ascontiguousarray(x, dtype=np.float32)


def _db(rms: float) -> str:
    return f"{20 * np.log10(max(rms, 1e-12)):.0f}"


def _resample(x: np.ndarray, sr: int, samplerate: int) -> np.ndarray:
    """Polyphase resampling by samplerate/sr. A ratio whose reduced terms are large (44101 Hz: 48000/44101)
    would need a filter of 20 times the larger term (a million taps, seconds and gigabytes): it is approximated
    by the nearest ratio with terms up to MAX_FACTOR (off by parts in 10^8: no audible pitch or length change),
    and the length is the exact one."""
    g = gcd(sr, samplerate)
    up, down = samplerate // g, sr // g
    if max(up, down) > MAX_FACTOR:
        r = Fraction(samplerate, sr).limit_denominator(MAX_FACTOR)
        up, down = r.numerator, r.denominator
        while max(up, down) > MAX_FACTOR:  # (a numerator past the bound: coarser)
            r = Fraction(samplerate, sr).limit_denominator(max(1, down * MAX_FACTOR // up // 2))
            up, down = r.numerator, r.denominator
    y = resample_poly(x, up, down).astype(np.float32)
    n = round(len(x) * samplerate / sr)
    return y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), np.float32)])


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
    """(libsndfile format, subtype) for a file name: 32-bit float where the format has it (WAV, AIFF, ...), else
    24-bit PCM (FLAC), else the format's own default (OGG: Vorbis)."""
    ext = path.suffix[1:].upper()
    # (names libsndfile does not take for formats it writes: .aif was refused, "cannot tell an audio format", a review)
    if ext in ("AIF", "AIFC"):
        return "AIFF", "FLOAT"
    if ext == "OPUS" and sf.check_format("OGG", "OPUS"):
        return "OGG", "OPUS"
    if ext == "SD2":  # (its audio goes in a '._' resource fork beside the file: unreadable once renamed into place)
        raise RtvcError(f"{path}: rtvc does not write Sound Designer II files", "end the name in .wav, .flac or .aiff")
    if ext not in sf.available_formats():
        raise RtvcError(
            f"{path}: cannot tell an audio format from the name '{path.name}'",
            "end it in .wav, .flac, .ogg, .opus or .aiff",
        )
    if sf.check_format(ext, "FLOAT"):
        return ext, "FLOAT"
    return ext, "PCM_24" if sf.check_format(ext, "PCM_24") else sf.default_subtype(ext)


def check_output_name(path: Path, audio: bool = True) -> None:
    """Before anything else: the name can be written (not a folder; for audio, it names a format libsndfile
    writes). Touches nothing."""
    path = Path(path)
    size = len(os.fsencode(path.name))
    if size > 255:  # (every file system rtvc runs on: a look at the path would fail with a traceback)
        raise RtvcError(f"{path}: the file name is {size} bytes long; names are 255 bytes at most", "name it shorter")
    if path.is_dir():
        example = path / ("out.wav" if audio else "report.json")
        raise RtvcError(f"{path}: is a folder", f"name a file in it, e.g. {example}")
    if audio:
        _format(path)


def check_rate(path: Path, samplerate: int) -> None:
    """The format the name says holds audio at this rate (MP3 stops at 48 kHz; a few formats, .xi and .wve, write
    a fixed rate of their own: the audio would play at the wrong speed). A few samples written beside the output
    (its folder exists) and read back tell; a headerless .raw keeps no rate to check."""
    fmt, subtype = _format(path)
    if fmt == "RAW":
        return
    probe = Path(path).with_name(_temporary("probe"))
    try:
        sf.write(str(probe), np.zeros(256, np.float32), samplerate, subtype=subtype, format=fmt)
        got = sf.info(str(probe)).samplerate
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        hint = "or set audio.samplerate (--samplerate) to 48000 or less" if fmt == "MP3" else "or check the folder"
        kind = path.suffix.lower() or f".{fmt.lower()}"  # (.opus: an OGG, said as named)
        raise RtvcError(
            f"{path}: a {kind} file of {samplerate} Hz audio cannot be written ({str(e).split(': ', 1)[-1]})",
            f"end the name in .wav or .flac, {hint}",
        ) from None
    finally:
        probe.unlink(missing_ok=True)
        probe.with_name(f"._{probe.name}").unlink(missing_ok=True)  # (.sd2's resource fork, beside it)
    if abs(got - samplerate) > samplerate / 1000:  # (a header that rounds, .sds's 44101 for 44100: not a speed)
        raise RtvcError(
            f"{path}: a .{fmt.lower()} file is written at {got} Hz whatever the audio's rate ({samplerate} Hz): it "
            "would play at the wrong speed",
            "end the name in .wav, .flac, .ogg or .aiff",
        )


def check_output(path: Path, audio: bool = True, samplerate: int | None = None) -> None:
    """Before the work: the file can be written there (its folder exists or can be made; for audio, the
    name says a format libsndfile writes, at `samplerate` where given; a file there is not read-only). Makes the
    folder."""
    path = Path(path)
    check_output_name(path, audio)
    if path.is_file() and not os.access(path, os.W_OK):
        raise RtvcError(f"cannot write {path}: the file there is read-only", "name another file, or chmod u+w it")
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # (deepest first)
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
    if audio and samplerate is not None:
        try:
            check_rate(path, samplerate)
        except RtvcError:  # refused: the folders made for it go too
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links and mounts too), there or not yet."""
    if Path(a).exists() and Path(b).exists():
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_not_same(src: Path, dst: Path) -> None:
    """Writing the output over the input would lose the input."""
    if same_file(src, dst):
        raise RtvcError(f"{dst} is also the input: writing it would destroy the original", "name another output file")


def save(path: Path, x: np.ndarray, samplerate: int) -> None:
    """Write the audio file whole or not at all: a file there before stays as it was where the write fails (a
    full disk, a quota) and is replaced at once where it succeeds (a link: the file it points to)."""
    path = Path(path)
    check_output(path, samplerate=samplerate)
    fmt, subtype = _format(path)
    target = Path(os.path.realpath(path))
    if fmt in COMPRESSED:
        # (encoded in memory a second at a time: libsndfile 1.2's Vorbis encoder crashed the process, a segfault,
        # given a minute in one write; its size is then known before the file is written, by Python)
        encoded = io.BytesIO()
        with sf.SoundFile(encoded, "w", samplerate, 1 if x.ndim == 1 else x.shape[1], subtype, format=fmt) as f:
            for at in range(0, len(x), samplerate):
                f.write(x[at : at + samplerate])
        data = encoded.getbuffer()
        replace_whole(target, lambda tmp: _write_bytes(tmp, data), str(path), len(data))
        return
    need = x.size * {"FLOAT": 4, "PCM_24": 3}.get(subtype, 0)
    replace_whole(target, lambda tmp: sf.write(str(tmp), x, samplerate, subtype=subtype, format=fmt), str(path), need)


COMPRESSED = ("FLAC", "OGG", "MP3")  # (formats whose size is not known before they are encoded)


def _write_bytes(path: Path, data) -> None:
    with open(path, "wb") as f:
        f.write(data)


FULL_UNDER = 1 << 20  # free bytes (with its part written) under which a failed write was the disk's being full


def replace_whole(target: Path, write, shown: str, need: int = 0) -> None:
    """`write(tmp)` a file beside `target`, then put it in its place (the mode, owner and group of the file there
    kept); RtvcError where it fails, with nothing left of it and the file there untouched. A target that is no
    regular file (a FIFO a reader waits on, /dev/null) is written into, as before; one that cannot be replaced
    (a file bind-mounted into a container: EBUSY, EXDEV) gets the finished file copied over it. `need`: the bytes
    it writes, where known: a failed write with less free than that says the disk is full (libsndfile's own words
    for it are "System error.")."""
    try:
        there = os.stat(target)
    except OSError:
        there = None
    if there is not None and not stat.S_ISREG(there.st_mode):
        try:
            write(target)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise RtvcError(f"cannot write {shown}: {_why(e)}", "check what it is and its permissions") from None
        return
    tmp = target.with_name(_temporary("tmp"))
    try:
        write(tmp)
        if there is not None:
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(there.st_mode))
                os.chown(tmp, there.st_uid, there.st_gid)  # (root writing a user's file: it stays theirs)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # (on the disk before the rename: a crash leaves the old file or the new one)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, target)
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            shutil.copyfile(tmp, target)  # (a mount point cannot be renamed over: written in place, finished)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        full = False
        with contextlib.suppress(OSError):  # (with the part written still there: it filled the disk, of any size)
            full = shutil.disk_usage(target.parent).free < FULL_UNDER
        tmp.unlink(missing_ok=True)
        kept = "; the file there before is unchanged" if there is not None else ""
        why = _why(e)
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(target.parent).free
            if (isinstance(e, sf.LibsndfileError) and (full or free < need)) or (
                isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
            ):
                digits = 2 if need and f"{free / 1e6:.1f}" == f"{need / 1e6:.1f}" else 1  # (not "8.4 MB ... 8.4 MB")
                takes = f", the file takes {need / 1e6:.{digits}f} MB" if need else ""
                why = (
                    f"the disk filled up ({free / 1e6:.{digits}f} MB free in {target.parent} without its part written"
                    f"{takes})"
                )
        raise RtvcError(f"cannot write {shown}: {why}{kept}", "check the folder's free space and permissions") from None
    finally:
        tmp.unlink(missing_ok=True)


def _temporary(kind: str) -> str:
    return f".rtvc-{os.getpid()}-{next(_NAMES)}.{kind}"


def _why(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def silence_nonfinite(x: np.ndarray, samplerate: int, what: str = "input") -> str:
    """NaN or infinite samples (a damaged float file, a damaged model) become silence, in place, as they do
    live; returns what to tell the user ("" when there were none). `x`: (frames,) or (frames, channels)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return ""
    frames = bad.any(axis=1) if bad.ndim == 2 else bad
    n, first = int(np.count_nonzero(frames)), int(np.argmax(frames))
    x[bad] = 0.0
    return f"{n} NaN/infinite {what} samples played as silence (the first at {first / samplerate:.3f} s)"


def peak_note(y: np.ndarray, path: Path) -> str:
    """What to tell the user about an output beyond full scale ("" when it is within): a float file keeps it,
    but it clips where it is played; an integer format (FLAC) clips it as it is written."""
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak <= 1.0:
        return ""
    over = int(np.count_nonzero(np.abs(y) > 1.0))
    kept = _format(Path(path))[1] in ("FLOAT", "VORBIS", "OPUS", "MPEG_LAYER_III")  # (the codecs' are float too)
    how = "kept in the file; it clips where it is played" if kept else "clipped in the file"
    return (
        f"the output peaks at +{20 * np.log10(peak):.1f} dBFS ({over} samples beyond full scale, {how}): "
        "lower the voice's gain_db or the input's level"
    )
