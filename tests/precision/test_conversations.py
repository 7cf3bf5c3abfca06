"""Earlier turns never leak an answer: fow-cache's multi-turn traps through ``CacheCore``.

In each trap (context_swap, detail_swap, intent_flip) the last user message is the same or
nearly so, and the earlier turns change the right answer. All 240 pairs share one namespace,
so each lookup also meets the other conversations' entries. The control asks conversation *a*
again, and it must hit: a cache that refuses everything fails this test.
"""

from __future__ import annotations

from typing import Any

from semcache_plugins import CacheCore
from shipped_data import fow_conversations

MODEL = "test-model"


def _answer(pair: dict[str, Any]) -> str:
    return f"answer {pair['id']}"


def test_no_trap_is_served_from_another_context(core: CacheCore) -> None:
    pairs = fow_conversations()
    traps = [pair for pair in pairs if not pair["same_answer"]]
    assert len(pairs) == 240 and len(traps) == 120
    for pair in pairs:
        assert core.store(pair["a"], _answer(pair), MODEL) is not None
    served = {pair["id"]: core.lookup(pair["b"], MODEL) for pair in traps}
    assert [key for key, hit in served.items() if hit is not None] == []
    for pair in pairs:  # the control: the stored conversation itself
        hit = core.lookup(pair["a"], MODEL)
        assert hit is not None and hit.response == _answer(pair), pair["id"]
