"""The stream's shapes from config.toml's [audio] and [stream], and the checks on them that load_config cannot make
alone. Apart from rtvc.run so that `rtvc doctor` can check them where the audio core is not built."""

from __future__ import annotations

from rtvc.config import Config
from rtvc.converter import StreamShape
from rtvc.errors import ConfigError


def frames(ms: float, samplerate: int) -> int:
    return round(ms * samplerate / 1000.0)


def stream_shape(cfg: Config) -> StreamShape:
    """The converter's shapes from config.toml's [audio] and [stream] (ConfigError: stream.block_ms)."""
    sr = cfg.audio.samplerate
    return StreamShape(
        samplerate=sr,
        block=check_block(cfg),
        crossfade=frames(cfg.stream.crossfade_ms, sr),
        search=frames(cfg.stream.search_ms, sr),
        context=frames(cfg.stream.context_ms, sr),
    )


def check_stream(cfg: Config) -> None:
    """config.toml's [stream] against its [audio], as a voice's converter will take them (ConfigError): the checks
    load_config cannot make alone (the block against the period; the crossfade against the block)."""
    stream_shape(cfg).validate()


def check_block(cfg: Config) -> int:
    """stream.block_ms in frames, where the device period allows it (ConfigError where not)."""
    block = frames(cfg.stream.block_ms, cfg.audio.samplerate)
    if cfg.audio.period and block < cfg.audio.period and cfg.audio.period % block:
        raise ConfigError(
            f"stream.block_ms = {cfg.stream.block_ms} ({block} frames) is shorter than audio.period "
            f"({cfg.audio.period} frames) and does not divide it",
            "make the block a whole divisor or a multiple of the period",
        )
    return block
