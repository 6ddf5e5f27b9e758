"""Voice registry: a dict that fails loudly on a miss, naming the voices there are."""

from __future__ import annotations

from rtvc.errors import ConfigError
from rtvc.voices.base import Voice
from rtvc.voices.passthrough import PassthroughVoice
from rtvc.voices.pitch import PitchVoice
from rtvc.voices.rvc import RvcVoice

VOICES: dict[str, type[Voice]] = {
    PassthroughVoice.kind: PassthroughVoice,
    PitchVoice.kind: PitchVoice,
    RvcVoice.kind: RvcVoice,
}


def voice_class(kind: str, where: str) -> type[Voice]:
    try:
        return VOICES[kind]
    except KeyError:
        raise ConfigError(f"{where}: unknown voice '{kind}'", f"choose one of: {', '.join(sorted(VOICES))}") from None
