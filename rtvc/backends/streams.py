"""CUDA streams that no other part of rtvc uses at the same time.

`torch.cuda.Stream()` creates no stream: it hands out the next of a fixed pool (32 per device and priority,
round-robin), and `torch.cuda.graph` captures on one of that pool unless given a stream. With the "own-stream"
form the worker replays a playing voice's steps on pooled streams while another thread warms up and captures
the next voice on pooled streams too: once the pool wraps, the replay could land on the stream being captured
(recorded into the new graph, or failing it) or queue behind a warm-up's cuDNN timing (a review of the form
found this). Streams drawn here are held until released: a warm-up's or a capture's for its length, a runner's
or a decoder's branches' for their owner's life. A draw skips the held ones.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from rtvc.errors import ModelError

POOL = 32  # torch's streams per device and priority (c10's kStreamsPerPool)

_held: set[tuple[int, int]] = set()
_lock = threading.Lock()


def _key(stream: Any) -> tuple[int, int]:
    return (stream.device_index, stream.stream_id)


def draw(device: Any, owner: object | None = None, make: Callable[[Any], Any] | None = None) -> Any:
    """A pooled stream on `device` that nothing else of rtvc holds, held until `release` (or, with `owner`, until
    the owner is garbage collected). `make` is torch.cuda.Stream (a parameter for the tests)."""
    if make is None:
        import torch

        make = torch.cuda.Stream
    with _lock:
        for _ in range(2 * POOL):  # (round-robin: twice round the pool finds a free one if there is one)
            stream = make(device)
            key = _key(stream)
            if key not in _held:
                _held.add(key)
                if owner is not None:
                    weakref.finalize(owner, _release, key)
                return stream
    raise ModelError(
        f"all {POOL} of torch's CUDA streams on {device} are held by rtvc's steps",
        "fewer voices with the own-stream or parallel-branches forms at once; report this with `rtvc doctor`",
    )


def release(stream: Any) -> None:
    _release(_key(stream))


def _release(key: tuple[int, int]) -> None:
    with _lock:
        _held.discard(key)


@contextlib.contextmanager
def held(device: Any, make: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """A stream drawn for the length of a `with` block (a warm-up, a capture)."""
    stream = draw(device, make=make)
    try:
        yield stream
    finally:
        release(stream)
