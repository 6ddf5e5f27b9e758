"""What a Textual app shows, as text: the characters of every cell, row by row (for asserts and snapshots)."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App


def screen_text(app: App) -> str:
    """The current screen, composited like `App.export_screenshot` does, as plain text."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    # the compositor is Textual's own (export_screenshot uses it the same way); textual is pinned below 9
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
