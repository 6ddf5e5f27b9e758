"""What importing rtvc sets up for the process before any of its modules imports torch."""

from __future__ import annotations

import os
import subprocess
import sys


def _env_after_import(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    code = "import os, rtvc.voices.rvc; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_torch_backs_large_cpu_tensors_with_huge_pages_unless_the_user_says_otherwise():
    """A voice load reads its weights into fresh memory while it holds Python's lock: with 4 KiB pages the audio
    worker waited 10-20 times 5-20 ms during a load that grew the process; with huge pages 1-2 times
    (bench/voice_load.py). torch reads the setting at its first allocation, so rtvc sets it on import."""
    assert _env_after_import() == "1"
    assert _env_after_import(THP_MEM_ALLOC_ENABLE="0") == "0"


def test_listing_an_rvc_profile_does_not_import_torch():
    """voices.list asks every profile whether this machine can run it. Before, that imported torch: with audio
    running and no RVC voice at the daemon's start (torch is preloaded only then), a voice imported mid-stream
    stopped the audio for the seconds Python holds its lock to load torch (the in-process control tests saw the
    engine 'overloaded' after it). What needs no torch is still checked; selecting the voice checks the rest."""
    code = (
        "import sys; from rtvc.voices.rvc import RvcModelSettings as M, RvcVoice as V; "
        "print(repr(V.cannot_run(M(device='cuda', backend='cuda-graph'), 'p'))); "
        "print(repr(V.cannot_run(M(backend='cuda-graph'), 'p'))); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "''" and "runs on a CUDA device, but device = 'cpu'" in lines[1], lines
    assert lines[2] == "False"


def test_the_terminal_ui_loads_no_voice():
    """The TUI is a websocket client: it imported the profiles, and with them every voice, for one regular
    expression (a profile name's): scipy's signal package, 0.6 s of its start and ~60 MB, for nothing."""
    code = "import sys, rtvc.tui.launch, rtvc.tui.app; "
    code += "print(sorted(m for m in ('scipy', 'torch', 'rtvc.voices') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
