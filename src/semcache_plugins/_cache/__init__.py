"""The cache core: scope, index, sans-I/O flows, Redis execution, drivers, CacheCore."""

__all__: list[str] = []
