"""Time-to-live arguments (pure): one rule for the core, the adapters and bulk warming.

Per call (LiteLLM's semantics): ``None`` means the default, ``0`` means *do not store this
response*, a positive number of seconds (int, float or ``timedelta``) is rounded up to whole
seconds. Anything else is refused before anything is written.
"""

from __future__ import annotations

import math
from datetime import timedelta
from numbers import Real

from ._errors import ConfigurationError

__all__ = ["MAX_TTL_SECONDS", "entry_ttl", "validate_max_age", "validate_ttl"]

# Redis keeps expiry times in milliseconds (a signed 64-bit count): stay far below.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600


def validate_ttl(ttl: object) -> int | None:
    """A per-call TTL as whole seconds: None (the default), 0 (do not store) or > 0.

    Raises ``ConfigurationError`` for a negative, non-finite, boolean, oversized or
    non-numeric value."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds: float = ttl.total_seconds()
    elif isinstance(ttl, Real) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        raise ConfigurationError(
            f"ttl must be a number of seconds or a timedelta, not {type(ttl).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"ttl must be a finite number of seconds >= 0, not {ttl!r}")
    if seconds > MAX_TTL_SECONDS:
        raise ConfigurationError(f"ttl must be at most {MAX_TTL_SECONDS} seconds, not {ttl!r}")
    return math.ceil(seconds)


def entry_ttl(ttl: object, default: int | None) -> int | None:
    """The expiry of one entry: 0 = do not store, None = never expires, else seconds.

    ``ttl`` is the per-call value (see :func:`validate_ttl`), ``default`` the settings' one."""
    seconds = validate_ttl(ttl)
    return default if seconds is None else seconds


def validate_max_age(max_age: object) -> float:
    """A lookup's ``max_age`` in seconds (a number or a ``timedelta``): finite and >= 0."""
    if isinstance(max_age, timedelta):
        max_age = max_age.total_seconds()
    if not isinstance(max_age, Real) or isinstance(max_age, bool):
        raise ConfigurationError(
            f"max_age must be a number of seconds, not {type(max_age).__name__}"
        )
    seconds = float(max_age)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(
            f"max_age must be a finite number of seconds >= 0, not {max_age!r}"
        )
    return seconds
