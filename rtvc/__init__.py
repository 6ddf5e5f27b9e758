"""rtvc: a real-time voice changer daemon with measured, low latency."""

import os

__version__ = "0.1.0"

# torch backs its CPU tensors of 2 MB and more with transparent huge pages when this is set (it reads it at its
# first allocation: so here, before any rtvc module imports torch). A voice load reads its weights into fresh
# memory while it holds Python's lock; with 4 KiB pages each large tensor took 5-20 ms of page faults, and the
# audio worker waited that long (bench/voice_load.py, README "Switching to an RVC voice while talking").
# Where the kernel's THP is "never" it changes nothing; a value set by the user is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
