"""``notation_differs``: differences the normalized (embedded) text cannot show. Pure."""

from __future__ import annotations

import pytest

from semcache_plugins._cache._scope import normalize_text
from semcache_plugins._precision._notation import notation_differs

PY_BODY = "Why does this fail?\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n"
PY_A = PY_BODY + "    return s"
PY_B = PY_BODY + "        return s"  # returns inside the loop
FENCED_A = "Fix my code:\n```python\nif ready:\n    start()\nstop()\n```"
FENCED_B = "Please fix my code:\n```python\nif ready:\n    start()\n    stop()\n```"
YAML_A = "Is this valid?\nserver:\n  port: 80\n  host: a"
YAML_B = "Is this valid?\nserver:\n  port: 80\nhost: a"

# Pairs whose normalized forms hide a difference that changes the answer.
DIFFER = [
    ("What is 2³ + 1?", "What is 23 + 1?"),
    ("Compute 2³ + 1", "What is 23 + 1?"),  # a paraphrase around the folded digits too
    ("Simplify x² + 2x", "Simplify x2 + 2x"),
    ("What is 10⁻³ in decimals?", "What is 10-3 in decimals?"),
    ("How many atoms are in H₂O?", "How many atoms are in H2O?"),
    ("Is CO₂ heavier than air?", "Is CO2 heavier than air?"),
    ("What is a₁ + a₂?", "What is a1 + a2?"),
    ("Explain step ① of the guide", "Explain step 1 of the guide"),
    ("What comes after ③?", "What comes after 3?"),
    ("Is ½ cup of sugar enough?", "Is 12 cup of sugar enough?"),
    ("Is ¾ of the budget spent?", "Is 3/4 of the budget spent?"),
    ("What is １２ + 1?", "What is 12 + 1?"),  # fullwidth digits: folded-only difference
    ("Open the ﬁle", "Open the file"),  # ligature: folded-only difference
    ("What does Ⅳ mean?", "What does IV mean?"),
    (PY_A, PY_B),  # indentation in unfenced code
    (FENCED_A, FENCED_B),  # indentation in a fenced block, prose paraphrased
    (YAML_A, YAML_B),
    ("```\na  =  'x  y'\n```", "```\na = 'x y'\n```"),  # spacing inside code
    (FENCED_A, "Fix my code:\nif ready:\n    start()\n    stop()"),  # fenced vs not
]

# Pairs the check must leave to the model and the guards (controls).
SAME = [
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("What is Redis?", "what is redis?"),  # case
    ("What  is\nRedis?", "What is Redis?"),  # whitespace outside code
    ("It’s broken, “why”?", 'It\'s broken, "why"?'),  # quote style
    ("What is x² + y²?", "Tell me what x² + y² is"),  # the same notation, paraphrased
    ("Is H₂O wet?", "Is H₂O actually wet?"),
    (PY_A, PY_A.replace("Why does this fail?", "What is wrong here?")),  # same code
    (FENCED_A, FENCED_A.replace("Fix my code:", "Can you fix this?")),
    (FENCED_A, "Fix my code:\nif ready:\n    start()\nstop()"),  # same code, unfenced
    ("What is 12 + 1?", "What is 12 + 1?"),
]


@pytest.mark.parametrize(("query", "cached"), DIFFER)
def test_hidden_differences_are_found(query: str, cached: str) -> None:
    assert notation_differs(query, cached)
    assert notation_differs(cached, query)


@pytest.mark.parametrize(("query", "cached"), SAME)
def test_visible_or_harmless_differences_are_left_alone(query: str, cached: str) -> None:
    assert not notation_differs(query, cached)
    assert not notation_differs(cached, query)


def test_the_folded_pairs_do_look_identical_once_normalized() -> None:
    """Why the check exists: these are equal in what is embedded."""
    for query, cached in (DIFFER[0], DIFFER[4], DIFFER[7], DIFFER[11], (PY_A, PY_B)):
        assert normalize_text(query) == normalize_text(cached)
