"""The voice interface the streaming converter drives.

A voice has fixed sample rates and a fixed amount of left context; each block the converter hands it
a window (context + new audio, at the voice's rate) and asks for the last `tail` frames converted.
Parameters arrive as the voice's own frozen dataclass, changed only at block boundaries. `convert`
must be a function of (window, params) alone: the converter renders a block twice, with the old and
the new parameters, to ramp between them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np


class Voice(Protocol):
    kind: ClassVar[str]  # registry name, used in profiles
    Params: ClassVar[type]  # frozen settings dataclass of the voice's parameters

    seamless: ClassVar[bool]  # optional: consecutive tails continue each other exactly (no SOLA)
    label: str  # what status and the UI show
    samplerate: int  # rate the voice consumes (and produces, unless it has out_samplerate)
    out_samplerate: int  # optional: rate it produces; `convert` returns tail * out / in frames
    latency: int  # frames of algorithmic delay it adds (lookahead), at `samplerate`

    def context_for(self, tail: int) -> int:
        """Frames of left context the voice needs before a tail of `tail` frames."""
        ...

    def prepare_stream(self, window: int, block: int) -> None:
        """Optional: called once by the converter when its shapes are fixed (window and block lengths at the
        voice's rate), before any audio: a voice builds its fixed-shape model runners here (graph capture,
        engine loading), so none of that happens inside a block."""
        ...

    def advance(self, window: np.ndarray, new: int, params: Any) -> None:
        """Optional: called once per block, before any `convert`, with the window whose last `new`
        frames just arrived and the parameters that hold after this block. A voice keeps its streaming
        state here (features, F0 cache), so that `convert` stays a function of (window, params)."""
        ...

    def moved(self, new: int) -> None:
        """Optional: called once per block, before any `convert`, with how many frames arrived: the stream's time,
        for a voice that processes on a grid of its own (the pitch voice's formant filter) and keeps what it
        computed for whole steps of it. Unlike `advance` it is no streaming state of the window's: the window may
        be given another's history (a voice switch), and a `convert` must then give what it would have."""
        ...

    def set_origin(self, frames: int) -> None:
        """Optional: the stream's time zero arrives `frames` into the voice's input (the converter's input
        resampler delays it). A voice that analyses on a fixed frame grid starts its grid there, so a
        stream sees the frames a whole-file conversion sees."""
        ...

    def convert(self, window: np.ndarray, tail: int, params: Any) -> np.ndarray:
        """window: (context + tail,) float32 -> (tail * out / in,) float32, the converted end of the window."""
        ...

    def reset(self) -> None:
        """Forget all state (a new stream starts)."""
        ...
