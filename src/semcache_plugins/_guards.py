"""Precision guards: judge what *differs* between a query and a cached prompt.

Cosine similarity cannot tell "convert 5 km to miles" from "convert 6 km to miles": the shared
context dominates. The guards diff the two texts after normalisation and reject a candidate when
what differs is a number, a negation, an antonym, a named entity, a unit, a technology, a time or a
quantifier; with an embedder, a small edit must also keep its local meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._guard_lexicon import (
    ANTONYM_PAIRS, CONTRACTIONS, FALSE_PREFIX_WORDS, IGNORABLE, IRREGULAR_FORMS, NEGATORS,
    NUMBER_WORDS, ORDINAL_WORDS, PREFIX_PAIRS, QUANTIFIER_GROUPS, SYNONYM_GROUPS, TECH_TERMS,
    TEMPORAL_GROUPS, UNIT_GROUPS,
)

__all__ = ["DEFAULT_SIMILARITY_THRESHOLD", "GuardVerdict", "check_guards", "diff_spans"]

#: Recommended cosine threshold (all-MiniLM-L6-v2) when the guards are on.
DEFAULT_SIMILARITY_THRESHOLD = 0.86
#: A small edit (at most this many content words replaced or added per side) ...
SMALL_EDIT_WORDS = 2
#: ... is served only if the sentences are this similar, or if their edited phrases are this
#: similar (the phrases: the edited words with one neighbouring content word each side).
SMALL_EDIT_SIMILARITY = 0.93
PHRASE_SIMILARITY = 0.80

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class GuardVerdict:
    """Whether the cached answer may serve the query, and why (``"ok"`` or a rule name)."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class _Tok:
    norm: str  # lower case, contractions expanded; numbers as "#12"
    key: str  # stem used to match the two sides
    cap: bool  # capitalised inside a sentence, or an acronym: a likely proper noun
    brk: bool = False  # punctuation before it (clause boundary)


_TOKEN_RE = re.compile(
    r"[£$€¥%]|\d[\d,]*(?:\.\d+)?(?::\d\d)?(?:st|nd|rd|th)?(?:%|[a-zA-Z]+)?"
    r"|[A-Za-z]+(?:'[A-Za-z]+)*'?"
)
_NUM_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?(?::\d\d)?)(st|nd|rd|th)?(.*)")
_IS_WORDS = frozenset("it that what who where when how there here he she".split())
_DIRECTIONAL = frozenset("to from into than vs versus".split())
_SCOPE_SKIP = frozenset("a an the my your our their his her its this that i you we they he she it "
                        "be is are was were do does did any to so even really ever yet still just "
                        "also always".split())


def _stem(word: str) -> str:
    if word in IRREGULAR_FORMS:
        return IRREGULAR_FORMS[word]
    if word.startswith("#") or len(word) <= 3:
        return word
    for suffix, repl, min_len in (("ies", "y", 5), ("ied", "y", 5), ("sses", "ss", 5),
                                  ("ing", "", 6), ("ed", "", 5), ("es", "", 5), ("s", "", 4)):
        if word.endswith(suffix) and len(word) >= min_len and not word.endswith(("ss", "us", "is")):
            word = word[: len(word) - len(suffix)] + repl
            break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def _expand(word: str) -> list[str]:
    lower = word.lower().rstrip("'")
    if lower in CONTRACTIONS:
        return CONTRACTIONS[lower].split()
    if lower.endswith("'s"):
        stem = lower[:-2]
        return [stem, "is"] if stem in _IS_WORDS else ["us"] if stem == "let" else [stem]
    for ending, expansion in CONTRACTIONS.items():
        if ending.startswith(("'", "n'")) and lower.endswith(ending):
            return [lower[: -len(ending)], *expansion.split()]
    return [lower.replace("'", "")]


def _number(raw: str) -> list[str]:
    value, ordinal, rest = _NUM_RE.fullmatch(raw.lower()).groups()  # type: ignore[union-attr]
    value = value.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return [f"#{value}{'th' if ordinal else ''}", *([rest] if rest else [])]


def _tokenize(text: str) -> list[_Tok]:
    """Normalised tokens; numbers become ``#value``, number words are folded in."""
    text = unicodedata.normalize("NFKC", text).translate({0x2019: "'", 0x2018: "'"}).strip()
    letters = [c for c in text if c.isalpha()]
    has_case = any(c.islower() for c in letters) and any(c.isupper() for c in letters)
    toks: list[_Tok] = []
    last_end = 0
    for match in _TOKEN_RE.finditer(text):
        raw, gap = match.group(), text[last_end:match.start()]
        initial = not toks or any(c in ".!?" for c in gap)
        last_end = match.end()
        cap = has_case and raw[0].isupper() and raw != "I" and (
            not initial or (len(raw) > 1 and raw.isupper()))
        brk = any(c in ",.;:!?()" for c in gap)
        for n, word in enumerate(_number(raw) if raw[0].isdigit() else _expand(raw)):
            if word:
                number = word.startswith("#")
                toks.append(_Tok(word, _stem(word), cap and not number, brk and n == 0))
    return _fold_numbers(toks)


def _fold_numbers(toks: list[_Tok]) -> list[_Tok]:
    """Number words to ``#value`` ("twenty five" -> #25); "am"/"pm" after a number to times."""
    out: list[_Tok] = []
    total: float | None = None
    for tok in [*toks, _Tok("", "", False)]:
        value = NUMBER_WORDS.get(tok.norm)
        if value is not None and tok.norm != "one":
            total = value if total is None else total * value if value >= 100 else total + value
            continue
        if total is not None:
            out.append(_Tok(f"#{total:g}", f"#{total:g}", False))
            total = None
        if tok.norm in ORDINAL_WORDS:
            out.append(_Tok(f"#{ORDINAL_WORDS[tok.norm]}th", f"#{ORDINAL_WORDS[tok.norm]}th", False))
        elif tok.norm in ("am", "pm") and out and out[-1].norm.startswith("#"):
            out.append(_Tok(tok.norm[0] + ".m.", tok.norm[0] + ".m.", False))
        elif tok.norm:
            out.append(tok)
    return out


def _only(toks: list[_Tok], other: list[_Tok]) -> list[_Tok]:
    keys = {t.key for t in other}
    return list({t.key: t for t in reversed(toks) if t.key not in keys}.values())[::-1]


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _is_typo(x: _Tok, y: _Tok) -> bool:
    a, b = x.norm, y.norm
    if not (a.isalpha() and b.isalpha()) or (_special(a) and _special(b)) or _antonyms(x, y):
        return False
    shortest, dist = min(len(a), len(b)), _edit_distance(a, b)
    if x.cap or y.cap:
        return shortest >= 6 and dist <= 1
    if dist == 1:
        return shortest >= 5 or (shortest == 4 and (sorted(a) == sorted(b) or len(a) != len(b)))
    return dist == 2 and shortest >= 8


def _diff(ta: list[_Tok], tb: list[_Tok]) -> tuple[list[_Tok], list[_Tok]]:
    """Tokens only in ``ta`` / only in ``tb``, minus pairs that are typos of each other."""
    only_a, only_b = _only(ta, tb), _only(tb, ta)
    for x in list(only_a):
        y = next((y for y in only_b if _is_typo(x, y)), None)
        if y is not None:
            only_a.remove(x)
            only_b.remove(y)
    return only_a, only_b


def diff_spans(a: str, b: str) -> tuple[list[str], list[str]]:
    """Normalised tokens found only in ``a`` / only in ``b`` (case, punctuation, plurals and
    typos folded; numbers as ``#value``)."""
    only_a, only_b = _diff(_tokenize(a), _tokenize(b))
    return [t.norm for t in only_a], [t.norm for t in only_b]


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, str], dict[str, str], dict[str, str], set[tuple[str, str]]]:
    def index(groups: dict[str, frozenset[str]]) -> dict[str, str]:
        return {word: canon for canon, words in groups.items() for word in words}

    antonyms = {(x, y) for x, y in ANTONYM_PAIRS} | {(y, x) for x, y in ANTONYM_PAIRS}
    return index(TEMPORAL_GROUPS), index(UNIT_GROUPS), index(QUANTIFIER_GROUPS), antonyms


def _special(word: str) -> bool:
    temporal, units, quantifiers, _ = _lexicon()
    return any(word in group for group in (temporal, units, quantifiers, NEGATORS, TECH_TERMS))


def _prefix_antonym(a: str, b: str) -> bool:
    if a in FALSE_PREFIX_WORDS or b in FALSE_PREFIX_WORDS:
        return False
    return any(x.startswith(p) and y.startswith(q) and x[len(p):] == y[len(q):]
               and len(x) - len(p) >= (3 if p else 4)
               for p, q in PREFIX_PAIRS for x, y in ((a, b), (b, a)))


def _antonyms(x: _Tok, y: _Tok) -> bool:
    pairs = _lexicon()[3]
    return ((x.norm, y.norm) in pairs or (x.key, y.key) in pairs
            or _prefix_antonym(x.norm, y.norm) or _prefix_antonym(x.key, y.key))


def _groups(toks: Iterable[_Tok], index: dict[str, str]) -> set[str]:
    return {index[t.norm] for t in toks if t.norm in index}


def _numbers_differ(ta: list[_Tok], tb: list[_Tok]) -> bool:
    na = Counter(t.norm for t in ta if t.norm.startswith("#"))
    nb = Counter(t.norm for t in tb if t.norm.startswith("#"))
    extra_a, extra_b = na - nb, nb - na
    if extra_a and extra_b:
        return True
    ones_a, ones_b = any(t.norm == "one" for t in ta), any(t.norm == "one" for t in tb)
    return bool(extra_a and ones_b and "#1" not in extra_a or extra_b and ones_a
                and "#1" not in extra_b)


def _negation_scope(toks: list[_Tok]) -> tuple[int, set[str]]:
    """Number of negators, and the key of the first real word each one governs."""
    count, scope = 0, set()
    for i, tok in enumerate(toks):
        if tok.norm in NEGATORS:
            count += 1
            nxt = next((t for t in toks[i + 1:] if t.brk or t.norm not in _SCOPE_SKIP), None)
            if nxt is not None and not nxt.brk and nxt.norm not in NEGATORS:
                scope.add(nxt.key)
    return count, scope


def _negation_flip(ta: list[_Tok], tb: list[_Tok]) -> bool:
    """Polarity differs on a word both texts contain ("cancel" vs "don't cancel")."""
    (na, sa), (nb, sb) = _negation_scope(ta), _negation_scope(tb)
    if na % 2 == nb % 2:
        return False
    keys_a, keys_b = {t.key for t in ta}, {t.key for t in tb}
    return bool((sa - sb) & keys_b or (sb - sa) & keys_a)


def _order_swapped(ta: list[_Tok], tb: list[_Tok]) -> bool:
    """Same anchors (names, numbers, units, tech) in swapped order around "to"/"from"."""
    units = _lexicon()[1]

    def anchors(toks: list[_Tok]) -> list[str]:
        return list(dict.fromkeys(t.key for t in toks if t.cap or t.norm.startswith("#")
                                  or t.norm in TECH_TERMS or t.norm in units))

    if not ({t.norm for t in ta} & _DIRECTIONAL and {t.norm for t in tb} & _DIRECTIONAL):
        return False
    aa, ab = anchors(ta), anchors(tb)
    shared = [k for k in aa if k in ab]
    return len(shared) >= 2 and shared != [k for k in ab if k in shared]


def _aliases(ea: list[str], eb: list[str]) -> bool:
    """"UK" / "Britain", "US" / "United States": a synonym group or initials."""
    ja, jb = "-".join(ea), "-".join(eb)
    initials_a, initials_b = "".join(w[0] for w in ea), "".join(w[0] for w in eb)
    return (any(ja in g and jb in g for g in SYNONYM_GROUPS)
            or (len(ea) == 1 and len(eb) > 1 and ja == initials_b)
            or (len(eb) == 1 and len(ea) > 1 and jb == initials_a))


def _lexical_verdict(ta: list[_Tok], tb: list[_Tok], only_a: list[_Tok],
                     only_b: list[_Tok]) -> str | None:
    """The first lexical rule that fires, or None."""
    if _numbers_differ(ta, tb):
        return "number_mismatch"
    antonym = any(_antonyms(x, y) for x in only_a for y in only_b)
    flipped = _negation_scope(ta)[0] % 2 != _negation_scope(tb)[0] % 2
    if antonym and not flipped:  # "not correct" vs "incorrect" cancel out
        return "antonym"
    if not antonym and _negation_flip(ta, tb):
        return "negation_mismatch"
    temporal, units, quantifiers, _ = _lexicon()
    for name, index in (("time_mismatch", temporal), ("unit_mismatch", units),
                        ("quantifier_mismatch", quantifiers)):
        ga, gb = _groups(ta, index), _groups(tb, index)
        if ga - gb and gb - ga:
            return name
    ent_a = [t.norm for t in only_a if t.cap or t.norm in TECH_TERMS]
    ent_b = [t.norm for t in only_b if t.cap or t.norm in TECH_TERMS]
    if ent_a and ent_b and not _aliases(ent_a, ent_b):
        tech = any(x in TECH_TERMS for x in ent_a) and any(y in TECH_TERMS for y in ent_b)
        return "tech_mismatch" if tech else "entity_mismatch"
    if _order_swapped(ta, tb):
        return "order_swap"
    return None


def _content(toks: Iterable[_Tok]) -> list[_Tok]:
    return [t for t in toks if t.norm not in IGNORABLE]


def _window(toks: list[_Tok], keys: set[str]) -> list[_Tok]:
    """The edited content words with the nearest content word before and after them."""
    content = _content(toks)
    idx = [i for i, t in enumerate(content) if t.key in keys]
    return content[max(min(idx) - 1, 0):max(idx) + 2] if idx else []


def check_guards(query: str, cached: str, similarity: float, *,
                 embed: Embed | None = None) -> GuardVerdict:
    """May the answer cached for ``cached`` serve ``query``? ``similarity`` is their cosine.

    ``embed`` (texts -> unit vectors) enables the small-edit check; it is called at most once.
    """
    ta, tb = _tokenize(query), _tokenize(cached)
    if [t.key for t in ta] == [t.key for t in tb]:
        return GuardVerdict(True, "identical")
    only_a, only_b = _diff(ta, tb)
    reason = _lexical_verdict(ta, tb, only_a, only_b)
    if reason is not None:
        return GuardVerdict(False, reason)
    ca, cb = _content(only_a), _content(only_b)
    shared = {t.key for t in _content(ta)} & {t.key for t in _content(tb)}
    small = 0 < max(len(ca), len(cb)) <= SMALL_EDIT_WORDS and shared
    if embed is None or not small or similarity >= SMALL_EDIT_SIMILARITY:
        return GuardVerdict(True, "ok")
    ka, kb = {t.key for t in ca}, {t.key for t in cb}
    wa, wb = _window(ta, ka), _window(tb, kb)
    pa = " ".join(t.norm for t in wa or [t for t in wb if t.key not in kb]) or query
    pb = " ".join(t.norm for t in wb or [t for t in wa if t.key not in ka]) or cached
    vectors = np.asarray(embed([pa, pb]), dtype=np.float32)
    if float(vectors[0] @ vectors[1]) < PHRASE_SIMILARITY:
        return GuardVerdict(False, "content_mismatch")
    return GuardVerdict(True, "ok")
