"""What the main screen writes: a parameter's stepper spec from the daemon's ranges, the latency line, the
worker's scheduling."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from rtvc.priority import AWAITING_CALLBACKS
from rtvc.tui.stepper import Spec

# step, big step, unit per parameter name; others: 1/100 of the range
STEPS: dict[str, tuple[float, float, str]] = {
    "pitch": (1.0, 12.0, "st"),
    "formant": (0.5, 3.0, "st"),
    "gain_db": (1.0, 6.0, "dB"),
    "index_rate": (0.05, 0.25, ""),
    "protect": (0.01, 0.1, ""),
    "rms_mix": (0.05, 0.25, ""),
    "speaker": (1.0, 10.0, ""),
}


def spec_for(name: str, r: dict[str, Any]) -> Spec | None:
    """A stepper for a numeric parameter with a range (params.get's `ranges`), else None."""
    if "min" not in r or "max" not in r:
        return None
    integer = r.get("type") == "an integer"
    step, big, unit = STEPS.get(name, (1.0 if integer else (r["max"] - r["min"]) / 100, 10.0, ""))
    return Spec(name, float(r["min"]), float(r["max"]), step, big, integer, unit, r.get("help", ""))


def latency_text(st: dict[str, Any]) -> str:
    lat = st.get("latency")
    if not lat:
        return "latency: - (the device is not running yet)"
    ms = lat["ms"]
    names = {"device_in": "device in", "block": "block", "converter": "converter", "prefill": "prefill"}
    parts = " + ".join(f"{label} {ms[k]:.1f}" for k, label in names.items())
    return f"latency {ms['total']:.1f} ms = {parts} + device out {ms['device_out']:.1f}"


def scheduling_text(priority: str | None) -> str:
    """The worker thread's scheduling (status.get's `engine.worker_priority`) as rich markup: a refusal of
    the real-time scheduling the user asked for stands out, since it is the likely cause of crackle and the
    text names the fix; off by the user's own choice is dim."""
    if not priority:
        return ""
    if priority == "normal":
        return "[dim]worker normal scheduler (stream.realtime = false)[/]"
    if priority.startswith("normal (") and priority != AWAITING_CALLBACKS:
        return f"[yellow]⚠ worker {escape(priority)}[/]"
    return f"worker {escape(priority)}"
