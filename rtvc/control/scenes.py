"""OBS scenes pick voices: the latest program scene's voice is the one that ends up playing.

A model voice loads for seconds, and a streamer may cut through several scenes meanwhile. Each scene used to
start its own load, and loads waited on one lock in no set order: after A, B, C in quick succession the voice
of B could load last and play on scene C. Here one thread loads, always the voice the latest scene asked for;
a scene passed through during a load is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger("rtvc")
LOADED_KEPT = 32  # the latest scene loads remembered (a stream cuts between scenes for hours)


class SceneVoices:
    def __init__(
        self,
        current: Callable[[], str],
        select: Callable[[str, int | None], None],
        name: Callable[[str], str] = str,
        intend: Callable[[str], int] | None = None,
    ) -> None:
        """current(): the profile playing now, by name, or the one loading to play next (a voice picked by hand whose
        load is under way: a scene cut meanwhile to another voice was skipped as "playing", and to that one loaded it
        twice); select(profile, intent): load and switch to it (slow; errors are its own); name(profile): the name a
        profile plays under (a path to a .toml file: the file's stem); intend(profile): the cut's place among the
        voices asked for (rtvc.control.controller.Controller.intend: a client's select made before it does not
        win over it), taken as the scene comes on air, given to select."""
        self._current, self._select, self._name, self._intend = current, select, name, intend
        self._lock = threading.Lock()
        self._want: tuple[str, int | None] | None = None  # the latest scene's profile (and intent), not yet taken
        self._loading = False
        self.loaded: deque[str] = deque(maxlen=LOADED_KEPT)  # the latest profiles selected, in order (for tests)

    def request(self, profile: str) -> None:
        """A scene that maps to `profile` came on air (any thread; returns at once)."""
        self._ask((profile, self._intend(profile) if self._intend is not None else None))

    def _ask(self, want: tuple[str, int | None]) -> None:
        with self._lock:
            self._want = want
            if self._loading:
                return  # the loader takes it when its load ends
            self._loading = True
        threading.Thread(target=self._run, name="rtvc-obs-voice", daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    want, self._want = self._want, None
                    if want is None:
                        return
                profile, intent = want
                if self._name(profile) == self._current():
                    continue
                self.loaded.append(profile)
                try:
                    self._select(profile, intent)
                except Exception:  # a bug in a load: logged with its trace; the next scene still loads
                    log.exception("OBS scene's voice '%s' failed to load", profile)
        finally:  # whatever ended the loop, the next scene starts a loader again
            with self._lock:
                self._loading = False
                pending, self._want = self._want, None  # (asked for between the loop's end and here)
            if pending is not None:
                self._ask(pending)
