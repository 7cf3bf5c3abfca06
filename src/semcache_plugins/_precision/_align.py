"""Alignment guards: what differs between two texts, and whether the model can see it.

The embedder places "the cheapest flight" next to "the most expensive flight" and "a + b" next
to "a - b". These checks align the two texts and refuse when a differing span carries meaning of
that kind: another member of a closed class (``_guard_lexicon.CLOSED_CLASSES``), another
operator, identifier or code span. Pure functions over normalised token lists and text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

from . import _guard_lexicon as lex

__all__ = ["closed_class_conflict", "code_conflict", "differing_sentences", "sentences"]

_PHRASES: dict[tuple[str, ...], list[tuple[str, str]]] = {}
_GROUPS = {"time": lex.TEMPORAL_GROUPS, "unit": lex.UNIT_GROUPS,
           "quantifier": lex.QUANTIFIER_GROUPS}  # fmt: skip
for _name, _members in [*lex.CLOSED_CLASSES.items(), *_GROUPS.items()]:
    for _phrase, _value in _members.items():
        _PHRASES.setdefault(tuple(_phrase.split()), []).append((_name, _value))
_LONGEST = max(len(phrase) for phrase in _PHRASES)

#: A replaced span of at most this many words (a side) is a substitution, not a rewording.
SUBSTITUTION_WORDS = 3

Tagged = list[tuple[str, tuple[tuple[str, str], ...]]]


def _tag(words: Sequence[str]) -> Tagged:
    """Words with closed-class phrases folded into one item: (text, ((class, value), ...))."""
    out: Tagged = []
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            found = _PHRASES.get(tuple(words[i : i + size]))
            if found:
                out.append((" ".join(words[i : i + size]), tuple(found)))
                i += size
                break
        else:
            out.append((words[i], ()))
            i += 1
    return out


def _values(items: Tagged, *, span_only: bool) -> dict[str, list[str]]:
    """Class -> its values in text order (``span_only``: every class, else the unambiguous
    ones; the lexical guards already compare time, units and quantifiers over whole texts)."""
    out: dict[str, list[str]] = {}
    for _, tags in items:
        for name, value in tags:
            if span_only or not (name in lex.SPAN_ONLY_CLASSES or name in _GROUPS):
                out.setdefault(name, []).append(value)
    return out


def _clash(va: dict[str, list[str]], vb: dict[str, list[str]], *, order: bool = False) -> str:
    """A class with a value on each side that the other lacks (``order``: instead, the same
    values in another order, "Monday before Tuesday" / "Tuesday before Monday")."""
    for name in sorted(va.keys() & vb.keys()):
        ca, cb = Counter(va[name]), Counter(vb[name])
        if order and ca == cb and len(ca) > 1 and va[name] != vb[name]:
            return name
        if not order and ca - cb and cb - ca:
            return name
    return ""


def closed_class_conflict(a: Sequence[str], b: Sequence[str]) -> str:
    """The closed class whose members differ between the word lists ``a`` and ``b``, or ``""``.

    Over the whole texts for the unambiguous classes; for every class, in a short replaced span
    once the texts are aligned ("log *in*" / "log *out*"), and as a swap of the same members
    ("left of X, right of Y" / "right of X, left of Y")."""
    ta, tb = _tag(a), _tag(b)
    whole = _clash(_values(ta, span_only=False), _values(tb, span_only=False))
    if whole:
        return whole
    matcher = SequenceMatcher(None, [w for w, _ in ta], [w for w, _ in tb], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace" and max(i2 - i1, j2 - j1) <= SUBSTITUTION_WORDS:
            name = _clash(_values(ta[i1:i2], span_only=True), _values(tb[j1:j2], span_only=True))
            if name:
                return name
    return _clash(_values(ta, span_only=True), _values(tb, span_only=True), order=True)


_FENCE_RE = re.compile(r"```.*?(?:```|$)|`[^`\n]+`", re.DOTALL)
_IDENT_RE = re.compile(
    r"(?<![\w.])(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z]\w*\(\)|\w*_\w+"
    r"|[a-z]+[A-Z]\w*|--?[A-Za-z][\w-]*)"
)
# Operators; "-", "/", "&" and "*" only when not joining two letters ("top-up", "and/or").
_OP_RE = re.compile(
    r"==|!=|<=|>=|=>|->|\*\*|//|&&|\|\||<<|>>|<|>|=|\+|\^|%(?=\s*\d)"
    r"|(?<![A-Za-z])[-/&*](?![A-Za-z])|(?<=\d)[-/*](?=[A-Za-z])"
)
_OPERAND = r"(?:\d|(?<![\w.])[A-Za-z](?![\w.])|[()])"
# Operator words count only between operands ("2 plus 3", "x times y"): "how many times" is prose.
_OP_WORDS = {
    "plus": "+",
    "minus": "-",
    "times": "*",
    "multiplied by": "*",
    "divided by": "/",
    "equals": "=",
    "to the power of": "^",
}
_OP_WORD_RE = re.compile(
    r"(?i)"
    + _OPERAND
    + r"\s*\b("
    + "|".join(sorted(_OP_WORDS, key=len, reverse=True))
    + r")\b\s*"
    + r"(?="
    + _OPERAND
    + r")"
)
_OP_CANON = {"==": "=", "**": "^"}
# An operator between two words or values ("count += 1", "a == b", "x<y"); not "my card>".
_CODE_OP_RE = re.compile(r"[\w)\]]\s*(?:==|!=|<=|>=|[-+*/%]=|&&|\|\||[<>=+^])\s*[\w(\[\"'-]")
# "9/11" and "24/7" are prose: "/" counts only with spaces around it ("7 / 2").
_MATH_RE = re.compile(_OPERAND + r"(?:\s*(?:==|!=|<=|>=|[-+*^<>=])\s*|\s+/\s+)(?="
                      + _OPERAND + r")|(?<![\w.])-\d")  # fmt: skip


def _symbolic(text: str) -> str:
    """Operator words between operands as symbols: "2 plus 3" -> "2 + 3"."""
    return _OP_WORD_RE.sub(
        lambda m: m.group(0).replace(m.group(1), f" {_OP_WORDS[m.group(1).lower()]} "), text
    )


def _operators(text: str) -> Counter[str]:
    return Counter(_OP_CANON.get(m.group(), m.group()) for m in _OP_RE.finditer(text))


# (left operand, operator, right operand): clauses may move ("x = 1, what is x + y" / "what is
# x + y when x = 1"), but "2 - 3" is not "3 - 2".
_TRIPLE_RE = re.compile(
    r"([\w.²³⁴()\[\]]+)\s*(==|!=|<=|>=|[-+*/%]=|&&|\|\||\*\*|//|[-+*/^<>=])\s*"
    r"(?=([\w.²³⁴()\[\]-]+))"
)


def _identifiers(text: str) -> set[str]:
    """Code-like names; "yet.Would" (a missing space after a full stop) is prose."""
    return {
        name
        for name in _IDENT_RE.findall(text)
        if not re.fullmatch(r"[a-z]+\.([A-Z][a-z]*)", name)
        or name.split(".")[1].lower() not in lex.IGNORABLE
    }


def code_conflict(a: str, b: str) -> str:
    """``"code_mismatch"``, ``"identifier_mismatch"``, ``"operator_mismatch"`` or ``""``."""
    code_a = [m.group().strip("`").strip() for m in _FENCE_RE.finditer(a)]
    code_b = [m.group().strip("`").strip() for m in _FENCE_RE.finditer(b)]
    if code_a and code_b and code_a != code_b:
        return "code_mismatch"
    ids_a, ids_b = _identifiers(a), _identifiers(b)
    if ids_a - ids_b and ids_b - ids_a:
        return "identifier_mismatch"
    a, b = _symbolic(a), _symbolic(b)
    differ = _operators(a) != _operators(b)
    differ = differ or Counter(_TRIPLE_RE.findall(a)) != Counter(_TRIPLE_RE.findall(b))
    if differ and any(r.search(t) for r in (_MATH_RE, _CODE_OP_RE) for t in (a, b)):
        return "operator_mismatch"
    return ""


_SENTENCE_RE = re.compile(r"(?<=[.!?:;])\s+|\n\s*")


def sentences(text: str) -> list[str]:
    """Sentences and lines of ``text`` (split after . ! ? : ; and at line breaks)."""
    return [s for s in _SENTENCE_RE.split(text.strip()) if s.strip()]


def differing_sentences(
    a: Sequence[str],
    b: Sequence[str],
    keys_a: Sequence[tuple[str, ...]],
    keys_b: Sequence[tuple[str, ...]],
) -> tuple[list[str], list[str], int]:
    """The sentences of ``a`` and ``b`` that are not shared (aligned by their token keys), and
    how many tokens the shared ones hold."""
    matcher = SequenceMatcher(None, list(keys_a), list(keys_b), autojunk=False)
    only_a: list[str] = []
    only_b: list[str] = []
    shared = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            shared += sum(len(k) for k in keys_a[i1:i2])
        else:
            only_a.extend(a[i1:i2])
            only_b.extend(b[j1:j2])
    return only_a, only_b, shared
