"""The framework adapters' private parts: converters, tenants, audit hooks."""

__all__: list[str] = []
