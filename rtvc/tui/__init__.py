"""The terminal UI (`rtvc tui`, and `rtvc run` on a terminal): a client of the daemon's websocket API."""
