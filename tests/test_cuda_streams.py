"""rtvc.backends.streams: torch hands out pooled CUDA streams round-robin; rtvc's own-stream runners, decoder
branches, warm-ups and captures must never share one (a replay on a stream being captured is recorded into the
new graph or fails it). The draw logic, with a stand-in for torch's pool (no GPU here)."""

from __future__ import annotations

import gc
import itertools

import pytest

from rtvc.backends import streams
from rtvc.errors import ModelError


class _Pooled:
    def __init__(self, index: int):
        self.device_index, self.stream_id = 0, index


def pool(size: int = streams.POOL):
    """torch.cuda.Stream as torch draws it: the next of `size`, round-robin."""
    counter = itertools.count()
    return lambda device: _Pooled(next(counter) % size)


def test_a_held_stream_is_never_handed_out_again_until_released():
    make = pool(4)
    a = streams.draw("cuda:0", make=make)
    b = streams.draw("cuda:0", make=make)
    try:
        with streams.held("cuda:0", make=make) as c:
            drawn = [streams.draw("cuda:0", make=make)]
            assert len({s.stream_id for s in (a, b, c, *drawn)}) == 4
            with pytest.raises(ModelError, match="all 32 of torch's CUDA streams on cuda:0 are held"):
                streams.draw("cuda:0", make=make)
            streams.release(drawn[0])
        again = streams.draw("cuda:0", make=make)  # (the capture's stream is free again)
        assert again.stream_id in {c.stream_id, drawn[0].stream_id}
        streams.release(again)
    finally:
        streams.release(a)
        streams.release(b)


def test_a_stream_held_for_an_owner_goes_back_with_it():
    class Runner:
        pass

    make = pool(2)
    runner = Runner()
    mine = streams.draw("cuda:0", owner=runner, make=make)
    other = streams.draw("cuda:0", make=make)
    assert other.stream_id != mine.stream_id
    with pytest.raises(ModelError):
        streams.draw("cuda:0", make=make)
    del runner
    gc.collect()
    assert streams.draw("cuda:0", make=make).stream_id == mine.stream_id
    streams.release(mine)
    streams.release(other)
