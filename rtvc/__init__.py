"""rtvc: a real-time voice changer daemon with measured, low latency."""

__version__ = "0.1.0"
