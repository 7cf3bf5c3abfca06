"""What a LiteLLM response says about the cache: shared by the tests that call ``litellm``."""

from __future__ import annotations

from typing import Any


def content(response: Any) -> str:
    """The first choice's text."""
    return str(response.choices[0].message.content)


def is_hit(response: Any) -> bool:
    """LiteLLM served this response from its cache (ours, through ``SemCache``)."""
    return response._hidden_params.get("cache_hit") is True
