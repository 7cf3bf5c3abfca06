"""The embedded Redis server's private parts: binaries and the watchdog."""

__all__: list[str] = []
