"""A profile's name, checked where no voice is loaded (the TUI's save screen): rtvc.profile_writer checks it
again when it writes. Kept apart: rtvc.profile_writer imports rtvc.profiles, and with it every voice (the pitch
voice's scipy, 0.6 s of the TUI's start for one regular expression)."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # (a file name on any system)
