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
import zipfile
from pathlib import Path
from typing import Any

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
    """`torch.load(path, **kwargs)`, with every tensor a copy of its own: mapped and copied for a zip
    checkpoint (every file torch.save has written since torch 1.6), read in chunks for a legacy one."""
    import torch

    if zipfile.is_zipfile(path):
        return _own(torch.load(path, mmap=True, **kwargs))
    return torch.load(io.BytesIO(read_chunked(path)), **kwargs)


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
