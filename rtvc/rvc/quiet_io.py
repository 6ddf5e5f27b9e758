"""Reading model files while a voice plays.

A voice is loaded while another one plays. On the 2-CPU VM we develop on, a process reading a large file
whole into fresh memory stalled rtvc's audio threads, although they run SCHED_FIFO and the reader was
another process: 8 s of reading the 380 MB HuBERT base file over and over made 3.5 s of output underruns with
`f.read()` and 0.5 s with `torch.load`; none with 1 MiB reads into one buffer, and none with
`torch.load(mmap=True)` and a copy of each tensor. In the daemon's own process the load's Python work costs
more than its reads (`bench/voice_load.py`: 70-190 ms of silence per full-size voice load either way), but a
FIFO thread beside the loader waited 72 ms in all for the GIL, in waits over 3 ms, across three loads this
way, against 422 ms with whole reads.

The copy is a memcpy in user space, and it is what the model keeps: a voice never holds a mapping of a file
the user may overwrite or delete while it plays.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from rtvc.errors import ModelError

CHUNK = 1 << 20  # bytes per read() in read_chunked: a short kernel copy each, preemptible in between


def read_chunked(path: Path) -> bytearray:
    """The whole file, read CHUNK bytes at a time into one buffer."""
    with path.open("rb", buffering=0) as f:
        size = path.stat().st_size
        buf = bytearray(size)
        view, done = memoryview(buf), 0
        while done < size:
            n = f.readinto(view[done : done + CHUNK])
            if not n:
                break  # the file shrank while read: the parser reports what is missing
            done += n
        view.release()
        del buf[done:]
    return buf


def torch_load(path: Path, **kwargs: Any) -> Any:
    """`torch.load(path, **kwargs)` from a private copy of the file, read in chunks, with every tensor a copy
    of its own. A zip checkpoint (every file torch.save has written since torch 1.6) has its members'
    checksums checked (torch does not check them: a download with a hole of zeros loaded as a voice), then is
    mapped and copied tensor by tensor. The mapping is of the private copy, never of the user's file: a file
    truncated while mapped (`cp new.pth voice.pth` during the load) killed the daemon with SIGBUS."""
    import torch

    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):  # (not Linux)
        data = io.BytesIO(read_chunked(path))
        if zipfile.is_zipfile(data):
            _check_members(path, data)
        data.seek(0)
        return torch.load(data, **kwargs)
    fd = os.memfd_create("rtvc-model", os.MFD_CLOEXEC)
    try:
        with open(fd, "r+b", buffering=0, closefd=False) as copy:
            _copy_chunked(path, copy)
            if zipfile.is_zipfile(copy):
                _check_members(path, copy)
                return _own(torch.load(f"/proc/self/fd/{fd}", mmap=True, **kwargs))
            copy.seek(0)
            return torch.load(copy, **kwargs)
    finally:
        os.close(fd)  # (the tensors are copies by now: the copy's memory goes with its last mapping)


def _copy_chunked(path: Path, out: BinaryIO) -> None:
    with path.open("rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(view):
            out.write(view[:n])
        view.release()


def _check_members(path: Path, f: BinaryIO) -> None:
    """ModelError naming the first member of a zip file whose data fails its checksum."""
    f.seek(0)
    try:
        bad = zipfile.ZipFile(f).testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ModelError(f"{path}: damaged zip archive ({e})", "download the file again") from None
    if bad is not None:
        raise ModelError(
            f"{path}: damaged: its part {bad!r} fails its checksum (the download is incomplete or corrupted)",
            "download the file again",
        )


def _own(obj: Any) -> Any:
    """`obj` with every tensor in its dicts, lists and tuples replaced by a copy."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):  # (OrderedDict too: its items are replaced in place, its type kept)
        for k, v in obj.items():
            obj[k] = _own(v)
        return obj
    if isinstance(obj, list):
        obj[:] = [_own(v) for v in obj]
        return obj
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_own(v) for v in obj)
    return obj
