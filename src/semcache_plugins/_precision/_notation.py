"""Differences the embedded text cannot show: notation folded by NFKC, whitespace in code.

The semantic tier compares ``normalize_text`` forms (NFKC, whitespace collapsed), which make
"2³ + 1" and "23 + 1", "H₂O" and "H2O", "①" and "1" identical, and two code snippets that
differ only in indentation identical too. The model and the guards then cannot see a difference
that changes the answer. ``notation_differs`` looks at the texts as sent and refuses such pairs;
it is pure and cheap, and runs on every semantic candidate before the guards.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["notation_differs"]

# Compatibility decompositions whose folding changes what a text says: x² is not x2, H₂O is
# not H2O, ① is an item marker and ½ is not 12. (<wide>, <compat> ligatures, <font> and
# <square> forms read the same once folded; they are still refused when they are the *only*
# difference, see _folded_only.)
_MEANINGFUL_TAGS = frozenset({"<super>", "<sub>", "<circle>", "<fraction>"})
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def _marks(text: str) -> list[str]:
    """The characters of ``text`` whose NFKC folding would hide meaning, in order."""
    return [
        char
        for char in unicodedata.normalize("NFC", text)
        if unicodedata.decomposition(char).split(" ", 1)[0] in _MEANINGFUL_TAGS
    ]


def _collapsed(text: str) -> str:
    return " ".join(text.split())


def _plain(text: str) -> str:
    """The text up to case, whitespace runs and quote style (differences that never matter)."""
    return _collapsed(unicodedata.normalize("NFC", text).lower().translate(_QUOTES))


def _folded_only(a: str, b: str) -> bool:
    """Identical once NFKC-folded, yet different in more than case, spacing and quotes."""
    nfkc_a = _collapsed(unicodedata.normalize("NFKC", a))
    nfkc_b = _collapsed(unicodedata.normalize("NFKC", b))
    return nfkc_a == nfkc_b and _plain(a) != _plain(b)


def _is_code(text: str) -> bool:
    """Several lines, some of them indented: code (or a layout whose whitespace matters)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 2 and any(line[:1] in (" ", "\t") for line in lines)


def _code_regions(a: str, b: str) -> list[tuple[str, str]]:
    """Pairs of code regions to compare: fenced blocks in order (a text that fences its code
    against one that does not: the blocks against the whole other text), else the whole texts
    when either is laid out as code."""
    fenced_a, fenced_b = _FENCE.findall(a), _FENCE.findall(b)
    if fenced_a and fenced_b:
        return list(zip(fenced_a, fenced_b, strict=False))
    if fenced_a or fenced_b:
        return [("\n".join(fenced_a), b)] if fenced_a else [(a, "\n".join(fenced_b))]
    return [(a, b)] if _is_code(a) or _is_code(b) else []


def _lines(code: str) -> list[str]:
    return [line.rstrip() for line in code.splitlines() if line.strip()]


def _indents(code: str) -> dict[str, str]:
    """Leading whitespace of each line whose (collapsed) content occurs once in ``code``."""
    seen: dict[str, list[str]] = {}
    for line in _lines(code):
        seen.setdefault(_collapsed(line), []).append(line[: len(line) - len(line.lstrip())])
    return {content: indents[0] for content, indents in seen.items() if len(indents) == 1}


def _code_whitespace_differs(a: str, b: str) -> bool:
    """Code whose lines or indentation differ where its words do not."""
    for code_a, code_b in _code_regions(a, b):
        if _collapsed(code_a) == _collapsed(code_b):
            if _lines(code_a) != _lines(code_b):
                return True
            continue
        indents_a, indents_b = _indents(code_a), _indents(code_b)
        if any(indents_b.get(line, indent) != indent for line, indent in indents_a.items()):
            return True
    return False


def notation_differs(query: str, cached: str) -> bool:
    """Whether two texts differ in a way their normalized (embedded) forms cannot show:
    superscripts, subscripts, circled numbers or fractions used differently, any other
    NFKC-only difference, or whitespace inside code. Such a pair is never a semantic hit."""
    if query == cached:
        return False
    if query.isascii() and cached.isascii():  # NFKC changes no ASCII text: only code is left
        return _code_whitespace_differs(query, cached)
    return (
        _marks(query) != _marks(cached)
        or _folded_only(query, cached)
        or _code_whitespace_differs(query, cached)
    )
