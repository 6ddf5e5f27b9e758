"""What the benchmarks share: the JACK device config, the machine description and writing the JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def jack_config(profile: Path, **stream: float):
    """rtvc's config for the JACK dummy server's system ports, mono out, with `profile` and [stream] keys."""
    from rtvc.config import load_config

    overrides: dict[str, tuple[Any, str]] = {
        "audio.host_api": ("JACK", "bench"),
        "audio.input_device": ("system", "bench"),
        "audio.output_device": ("system", "bench"),
        "audio.output_channels": (1, "bench"),
        "voice.profile": (str(profile), "bench"),
    }
    overrides.update({f"stream.{k}": (v, "bench") for k, v in stream.items()})
    return load_config(None, overrides)


def machine(**extra: Any) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), **extra}


def write_result(out: Path, name: str, result: dict[str, Any]) -> None:
    """bench/results/*.json: the bench's name, when, the machine, then its own fields."""
    out.parent.mkdir(parents=True, exist_ok=True)
    head = {"bench": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.write_text(json.dumps({**head, **result}, indent=2))
    print(f"\nwrote {out}")
