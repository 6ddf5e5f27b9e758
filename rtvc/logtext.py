"""rtvc's log lines as text (rtvc serve writes them to a terminal, a pipe or systemd's journal)."""

from __future__ import annotations

import logging
import numbers
import os
import re
from typing import IO

_UNSEEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def redraws(stream: IO[str]) -> bool:
    """Whether a line can be drawn over in place on `stream` (\\r, \\e[K): a terminal, and not TERM=dumb (Emacs'
    shell, an IDE's console: the escapes showed as text, one status line after another on a single line)."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # (no isatty, or a closed stream)
        return False


def _escaped(text: str) -> str:
    return _UNSEEN.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


class Lines(str):
    """rtvc's own text of several lines (the devices chosen), logged as it is by LogFormatter."""


class _Shown:
    """A logged value as LogFormatter shows it: its text with control characters escaped."""

    def __init__(self, value: object):
        self.value = value

    def __str__(self) -> str:
        return _escaped(str(self.value))

    def __repr__(self) -> str:
        return _escaped(repr(self.value))


class LogFormatter(logging.Formatter):
    """Log lines as text: a control character in what a line names (a profile's file name, an OBS scene, a device)
    is written as its escape, not sent to the terminal or the journal as it is: an escape sequence would recolour or
    clear the terminal, a line break would start a line that reads as one rtvc wrote, a text-direction override
    would reorder the rest of the line (as rtvc.profiles.check_label refuses them in labels). What a message is made
    of is escaped: the values given with it, or a message given whole (serve's event lines, which name profiles);
    a message's own format string, and `Lines`, go as written."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        args = record.args
        if not args:
            record.message = _escaped(str(record.msg))
        elif isinstance(args, tuple):
            shown = tuple(a if isinstance(a, numbers.Number | Lines) else _Shown(a) for a in args)
            try:
                record.message = str(record.msg) % shown
            except (TypeError, ValueError):  # (a format only the value itself takes: shown whole, escaped)
                record.message = _escaped(record.message)
        else:  # (a mapping: rtvc logs none)
            record.message = _escaped(record.message)
        return super().formatMessage(record)
