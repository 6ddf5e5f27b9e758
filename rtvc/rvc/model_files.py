"""Model files: torch checkpoints checked against their own checksums as they load, and what identifies a file.

- torch does not check a zip checkpoint's checksums: a download with a hole of zeros loaded as a voice and
  played. `torch_load` checks every member first (zipfile's CRC-32), and names the damaged one.
- `torch.load` reads the file itself, record by record. Mapping it instead (`mmap=True`) was tried: loads got
  no quieter for the voice that plays (`bench/voice_load.py`, within this VM's noise), and a file truncated
  while mapped (`cp new.pth voice.pth` during a load) killed the daemon with SIGBUS, where a read raises.
- A large file read whole into fresh memory (one `f.read()`) stalled rtvc's audio threads on the 2-CPU VM we
  develop on, though they run SCHED_FIFO and the reader was another process: 3.5 s of underruns in 8 s of
  reading the 380 MB HuBERT file over and over, none with 1 MiB reads. Reading a file into one buffer of its
  size also holds the GIL while Python zero-fills the buffer (186 ms for a 190 MB index, a block's deadline
  missed ten times over): faiss indexes are read by faiss itself, CHUNK bytes a call (rtvc.rvc.index).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

from rtvc.errors import ModelError

CHUNK = 1 << 20  # bytes per read() of a large file: a short kernel copy each, preemptible in between
ENDS = 1 << 16  # bytes read from each end of a model file for its identity


def torch_load(path: Path, **kwargs: Any) -> Any:
    """`torch.load(path, **kwargs)`, a zip checkpoint's checksums checked first (every file torch.save has
    written since torch 1.6; the legacy format has none)."""
    import torch

    if zipfile.is_zipfile(path):
        _check_members(path)
        _check_torch_zip(path)
    with warnings.catch_warnings():  # (torch's note on a legacy file's pickle protocol: ours says what is wrong)
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, **kwargs)


def check_voice_file(path: Path) -> None:
    """ModelError for a voice .pth that is not there, is a folder, or is no PyTorch checkpoint: what can be told
    without torch (a voice checks it before it imports torch, which stops the audio while it loads)."""
    if not path.exists():
        raise ModelError(
            f"{path}: voice model file not found",
            "put the RVC voice's .pth file (RVC's assets/weights) there, or set path in the profile's [model] table; "
            "`rtvc import VOICE.pth [VOICE.index]` copies a voice under models/ and writes its profile",
        )
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not an RVC voice .pth file", "point the voice at the .pth file")
    with path.open("rb") as f:
        head = f.read(4)
    if head[:4] != b"PK\x03\x04" and head[:1] != b"\x80":  # torch's zip format / legacy pickle format
        raise ModelError(
            f"{path}: not a PyTorch checkpoint (starts with bytes {head.hex() or 'nothing: the file is empty'})",
            "RVC voices are .pth files written by torch.save; check that this is the right file",
        )


def _check_torch_zip(path: Path) -> None:
    """ModelError for a zip that is no torch checkpoint (torch's has a data.pkl in one folder): a voice's download,
    a zip of the .pth and its index, renamed .pth (torch called it "truncated or damaged": download again)."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return
    inside = [n for n in names if n.lower().endswith((".pth", ".pt", ".index", ".onnx"))][:3]
    raise ModelError(
        f"{path}: a zip archive, not a PyTorch checkpoint"
        + (f" (it holds {', '.join(inside)})" if inside else f" ({len(names)} files, no model among them)"),
        "rename it to .zip and give it to `rtvc import`, which unpacks it"
        if inside
        else "check that this is the right file",
    )


def _check_members(path: Path) -> None:
    """ModelError naming the first member of a zip file whose data fails its checksum."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ModelError(f"{path}: damaged zip archive ({e})", "download the file again") from None
    if bad is not None:
        raise ModelError(
            f"{path}: damaged: its part {bad!r} fails its checksum (the download is incomplete or corrupted)",
            "download the file again",
        )


def path_identity(path: Path) -> tuple | None:
    """What tells a model file (or a folder's files: a transformers model) apart from an edited or replaced one;
    None when it cannot be read (a load then says why). Besides each file's inode, size and time, a digest of
    its ends: a file rewritten within one tick of the file system's clock keeps its time, and the end of a zip
    checkpoint (torch's format) lists the checksum of every tensor in it."""
    try:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        return (os.path.realpath(path), tuple(_file_identity(f) for f in files))
    except OSError:
        return None


def _file_identity(f: Path) -> tuple:
    st = f.stat()
    if not f.is_file():
        return (f.name, st.st_ino)
    with f.open("rb") as fh:
        head = fh.read(ENDS)
        fh.seek(max(st.st_size - ENDS, 0))
        tail = fh.read(ENDS)
    return (f.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(head + tail).hexdigest())
