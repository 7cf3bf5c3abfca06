"""Invalidation filters (pure): every part an exact hash, never a pattern, never "all"."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import ConfigurationError
from .._settings import validate_namespace
from ._scope import model_hash, system_prompt_hash

__all__ = ["invalidation_filter"]


def invalidation_filter(
    system_prompt: str | Sequence[str] | None, model: str | None, namespace: str | None
) -> dict[str, str | None]:
    """``invalidate_flow``'s filters: the namespace (validated as the settings' one; matched
    by its hash), the system prompt's and the model's hashes. ``ConfigurationError`` without
    any, or with an empty or malformed one: an empty TAG filter would match everything."""
    if system_prompt is None and model is None and namespace is None:
        raise ConfigurationError(
            "invalidate() needs system_prompt=, model= or namespace= (clear() empties this "
            "core's namespace)"
        )
    if namespace is not None:
        validate_namespace(namespace)
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ConfigurationError("invalidate(model=) needs a non-empty model name")
    if system_prompt is not None:
        prompts = [system_prompt] if isinstance(system_prompt, str) else system_prompt
        if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
            raise ConfigurationError("invalidate(system_prompt=) takes a string or strings")
        if isinstance(system_prompt, str) and not system_prompt.strip():
            raise ConfigurationError(
                "invalidate(system_prompt='') is ambiguous: pass system_prompt=[] for the "
                "entries of requests without a system prompt"
            )
    return {
        "namespace": namespace,
        "system": None if system_prompt is None else system_prompt_hash(system_prompt),
        "model": None if model is None else model_hash(model),
    }
