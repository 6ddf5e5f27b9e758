from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from jack_harness import JackServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def jack_server(request):
    """A JACK dummy server at the period given by indirect parametrisation; PortAudio rescanned onto it.

    PortAudio's JACK host API aborts the process if it is terminated after its server is gone, so
    PortAudio is always terminated first.
    """
    import sounddevice as sd

    period = getattr(request, "param", 256)
    server = JackServer(period)
    server.start()
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    sd._terminate()
    sd._initialize()
    try:
        yield server
    finally:
        sd._terminate()
        server.stop()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        sd._initialize()


@pytest.fixture
def jack_bare(request):
    """A JACK dummy server for a test whose rtvc runs in its own process: this process stays off it
    (no PortAudio client of ours in its graph), so the graph holds only rtvc and the harness."""
    server = JackServer(getattr(request, "param", 256))
    server.start()
    try:
        yield server
    finally:
        server.stop()
