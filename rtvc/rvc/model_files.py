"""Reading model files: torch checkpoints checked against their own checksums, indexes read in chunks (rtvc.rvc.index).

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

import zipfile
from pathlib import Path
from typing import Any

from rtvc.errors import ModelError

CHUNK = 1 << 20  # bytes per read() of a large file: a short kernel copy each, preemptible in between


def torch_load(path: Path, **kwargs: Any) -> Any:
    """`torch.load(path, **kwargs)`, a zip checkpoint's checksums checked first (every file torch.save has
    written since torch 1.6; the legacy format has none)."""
    import torch

    if zipfile.is_zipfile(path):
        _check_members(path)
    return torch.load(path, **kwargs)


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
