"""What a Textual app shows, as text: the characters of every cell, row by row (for asserts and snapshots)."""

from __future__ import annotations

import io
import re

from rich.console import Console
from textual.app import App


def screen_text(app: App, styles: bool = False, color: bool = True) -> str:
    """The current screen, composited like `App.export_screenshot` does, as plain text; `styles`: with the
    terminal's escapes for them (`color` False: as under NO_COLOR, bold, underline, reverse and the like only)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        no_color=not color,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    # the compositor is Textual's own (export_screenshot uses it the same way); textual is pinned below 9
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    text = console.export_text(styles=styles)
    return text if color else re.sub(r"\x1b\[([0-9;]*)m", _without_colour, text)


def _without_colour(m: re.Match[str]) -> str:
    """An SGR escape with its colours left out (38/48;5;n and 38/48;2;r;g;b, 30-37, 40-47, 90-97, 100-107)."""
    params, kept, i = m.group(1).split(";"), [], 0
    while i < len(params):
        p = params[i]
        if p in ("38", "48"):
            i += 5 if i + 1 < len(params) and params[i + 1] == "2" else 3
            continue
        if p and not (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
            kept.append(p)
        i += 1
    return f"\x1b[{';'.join(kept)}m" if kept else ""
