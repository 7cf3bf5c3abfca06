"""Precision guards: judge what *differs* between a query and a cached prompt.

Cosine similarity cannot tell "convert 5 km to miles" from "convert 6 km to miles". The guards
reject a candidate when what differs is a number, negation, antonym, name, unit, technology,
time, quantifier, direction, a member of another closed class, an operator, identifier or code
(``_align``); with an embedder, a small edit must keep the edited phrase's meaning, and texts
sharing a template or context are judged on the sentences that differ.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from . import _guard_lexicon as lex
from ._align import closed_class_conflict, code_conflict, differing_sentences, sentences

__all__ = ["DEFAULT_SIMILARITY_THRESHOLD", "GuardVerdict", "check_guards", "diff_spans"]

#: Recommended cosine threshold (all-MiniLM-L6-v2, mean pooling) when the guards are on.
DEFAULT_SIMILARITY_THRESHOLD = 0.85
#: A small edit (one place, at most this many content words per side) is served only if the
#: sentences are at least ``SMALL_EDIT_SIMILARITY`` similar or the edited phrases (edit plus the
#: nearest content word each side) are at least ``PHRASE_SIMILARITY`` similar.
SMALL_EDIT_WORDS = 2
SMALL_EDIT_SIMILARITY = 0.93
PHRASE_SIMILARITY = 0.80
#: Texts sharing at least this many tokens in identical sentences (and more than they differ
#: by) are judged on the differing sentences alone.
TEMPLATE_SHARED_TOKENS = 12


Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class GuardVerdict:
    """Whether the cached answer may serve the query, and why (``"ok"`` or a rule name)."""

    allowed: bool
    reason: str


@dataclass(frozen=True)
class _Tok:
    norm: str  # lower case, contractions expanded; numbers as "#12"
    key: str  # stem that matches the two sides
    cap: bool = False  # capitalised inside a sentence, or an acronym: a likely proper noun
    brk: bool = False  # punctuation before it (a clause boundary)
    word: str = ""  # the word a folded ordinal was written as (what the small-edit check embeds)


_TOKEN_RE = re.compile(
    r"[£$€¥%]|\d[\d,]*(?:\.\d+)?(?::\d\d)?(?:st|nd|rd|th)?(?:%|[a-zA-Z]+)?|[^\W\d_]+(?:'[^\W\d_]+)*'?"
)
_NUM_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?(?::\d\d)?)(st|nd|rd|th)?(.*)")


_TEMPORAL, _UNITS, _QUANTIFIERS = lex.TEMPORAL_GROUPS, lex.UNIT_GROUPS, lex.QUANTIFIER_GROUPS
_ANTONYMS = set(lex.ANTONYM_PAIRS) | {(y, x) for x, y in lex.ANTONYM_PAIRS}
_SPECIAL = {*_TEMPORAL, *_UNITS, *_QUANTIFIERS, *lex.NEGATORS, *lex.TECH_TERMS}


def _expand(word: str) -> list[str]:
    lower = word.lower().rstrip("'")
    if lower in lex.CONTRACTIONS:
        return lex.CONTRACTIONS[lower].split()
    if lower.endswith("'s"):
        stem = lower[:-2]
        return [stem, "is"] if stem in lex.IS_CONTRACTED else ["us"] if stem == "let" else [stem]
    for ending, expansion in lex.CONTRACTIONS.items() if "'" in lower else ():
        if ending.startswith(("'", "n'")) and lower.endswith(ending):
            return [lower[: -len(ending)], *expansion.split()]
    return [lower.replace("'", "")]


def _number(raw: str) -> list[str]:
    match = _NUM_RE.fullmatch(raw.lower())
    value, ordinal, rest = match.groups() if match else (raw, None, "")
    value = value.replace(",", "")
    value = value.rstrip("0").rstrip(".") if "." in value else value
    return [f"#{value}{'th' if ordinal else ''}", *([rest] if rest else [])]


def _tokenize(text: str) -> list[_Tok]:
    """Normalised tokens; numbers (digits or words) become ``#value``."""
    text = unicodedata.normalize("NFKC", text).translate({0x2019: "'", 0x2018: "'"}).strip()
    letters = [c for c in text if c.isalpha()]
    has_case = any(c.islower() for c in letters) and any(c.isupper() for c in letters)
    toks: list[_Tok] = []
    last_end = 0
    for match in _TOKEN_RE.finditer(text):
        raw, gap = match.group(), text[last_end : match.start()]
        initial = not toks or any(c in ".!?:\n" for c in gap)
        last_end = match.end()
        cap = has_case and raw[0].isupper() and raw != "I"
        cap = cap and (not initial or (len(raw) > 1 and raw.isupper()))
        brk = any(c in ",.;:!?()" for c in gap)
        for n, word in enumerate(_number(raw) if raw[0].isdigit() else _expand(raw)):
            if word:
                toks.append(_Tok(word, lex.stem(word), cap and word[0] != "#", brk and n == 0))
    start = 1 if len(toks) > 2 and toks[0].norm == "good" else 0  # "Good morning, ..."
    if len(toks) > start + 1 and toks[start].norm in lex.GREETINGS and toks[start + 1].brk:
        toks = toks[start + 1 :]
    return _fold_numbers(toks)


def _fold_numbers(toks: list[_Tok]) -> list[_Tok]:
    """Number words to ``#value`` ("twenty five" -> #25); "am"/"pm" after a number to times."""
    out: list[_Tok] = []
    total: float | None = None
    padded = [_Tok("", ""), *toks, _Tok("", ""), _Tok("", "")]
    for before, tok, after in zip(padded, padded[1:], padded[2:], strict=False):
        value = lex.NUMBER_WORDS.get(tok.norm)
        if value is not None and tok.norm != "one":
            total = value if total is None else total * value if value >= 100 else total + value
            continue
        if total is not None:
            out.append(_Tok(f"#{total:g}", f"#{total:g}"))
            total = None
        if tok.norm in lex.ORDINAL_WORDS and not _second_of_time(before, tok, after):
            ordinal = f"#{lex.ORDINAL_WORDS[tok.norm]}th"
            out.append(_Tok(ordinal, ordinal, word=tok.norm))
        elif tok.norm in ("am", "pm") and out and out[-1].norm.startswith("#"):
            out.append(_Tok(tok.norm[0] + ".m.", tok.norm[0] + ".m."))
        elif tok.norm:
            out.append(tok)
    return out


def _second_of_time(before: _Tok, tok: _Tok, after: _Tok) -> bool:
    """ "wait a second", "per second": the unit, not the ordinal ("a second card")."""
    unit_before = before.norm in lex.SECOND_UNIT_BEFORE or before.norm.startswith("#")
    ends = not after.norm or after.brk or after.norm in lex.IGNORABLE
    return tok.norm == "second" and unit_before and ends


def _is_typo(x: _Tok, y: _Tok) -> bool:
    a, b = x.norm, y.norm
    if abs(len(a) - len(b)) > 2 or not (a.isalpha() and b.isalpha()) or {a, b} <= _SPECIAL:
        return False
    if _antonyms(x, y):
        return False
    shortest, dist = min(len(a), len(b)), lex.edit_distance(a, b)
    if x.cap or y.cap:
        return shortest >= 6 and dist <= 1
    if dist == 1:
        return shortest >= 5 or (shortest == 4 and (sorted(a) == sorted(b) or len(a) != len(b)))
    return dist == 2 and shortest >= 8


def _diff(ta: list[_Tok], tb: list[_Tok]) -> tuple[list[_Tok], list[_Tok]]:
    """Tokens only in ``ta`` / only in ``tb`` (by stem), less pairs that are typos of each other."""
    keys_a, keys_b = {t.key for t in ta}, {t.key for t in tb}
    only_a = list({t.key: t for t in ta if t.key not in keys_b}.values())
    only_b = list({t.key: t for t in tb if t.key not in keys_a}.values())
    for x in list(only_a):
        y = next((y for y in only_b if _is_typo(x, y)), None)
        if y is not None:
            only_a.remove(x)
            only_b.remove(y)
    return only_a, only_b


def diff_spans(a: str, b: str) -> tuple[list[str], list[str]]:
    """Normalised tokens only in ``a`` / only in ``b``: case, punctuation, contractions, plurals
    and typos are folded; numbers read ``#value``."""
    only_a, only_b = _diff(_tokenize(a), _tokenize(b))
    return [t.norm for t in only_a], [t.norm for t in only_b]


def _prefix_antonym(a: str, b: str) -> bool:
    """ "lock"/"unlock", "include"/"exclude": opposite prefixes on one stem."""
    if a[-3:] != b[-3:] or a in lex.FALSE_PREFIX_WORDS or b in lex.FALSE_PREFIX_WORDS:
        return False
    return any(
        x.startswith(p) and y.startswith(q) and x[len(p) :] == y[len(q) :]
        and len(x) - len(p) >= (3 if p else 4)
        for p, q in lex.PREFIX_PAIRS
        for x, y in ((a, b), (b, a))
    )  # fmt: skip


def _antonyms(x: _Tok, y: _Tok) -> bool:
    pairs = {(x.norm, y.norm), (x.key, y.key)}
    return bool(pairs & _ANTONYMS) or any(_prefix_antonym(p, q) for p, q in pairs)


def _numbers_differ(ta: list[_Tok], tb: list[_Tok]) -> bool:
    """A number replaced by another ("one" counts; one-sided numbers go to the edit check)."""
    na, nb = (Counter("#1" if t.norm == "one" else t.norm for t in toks
                      if t.norm[0] == "#" or t.norm == "one") for toks in (ta, tb))  # fmt: skip
    for extra, other, toks in ((na - nb, nb - na, ta), (nb - na, na - nb, tb)):
        ones = sum(t.norm == "one" for t in toks)
        if set(extra) == {"#1"} and extra["#1"] <= ones and all(k.endswith("th") for k in other):
            return False  # "a second card ... give one to my daughter": a pronoun
    return bool(na - nb) and bool(nb - na)


def _negation(toks: list[_Tok]) -> tuple[int, set[str]]:
    """How many negators, and the stems of the words they govern."""
    count, scope = 0, set()
    for i, tok in enumerate(toks):
        if tok.norm in lex.NEGATORS:
            count += 1
            nxt = next((t for t in toks[i + 1 :] if t.brk or t.norm not in lex.SCOPE_SKIP), None)
            if nxt is not None and not nxt.brk and nxt.norm not in lex.NEGATORS:
                scope.add(nxt.key)
    return count, scope


def _order_swapped(ta: list[_Tok], tb: list[_Tok]) -> bool:
    """Names/numbers/units/tech reordered around "to"/"from", or "from A to B" / "from B to A"."""
    if not all({t.norm for t in toks} & lex.DIRECTIONAL for toks in (ta, tb)):
        return False
    aa, ab = (list(dict.fromkeys(t.key for t in toks if t.cap or t.norm[0] == "#"
                                 or t.norm in lex.TECH_TERMS or t.norm in _UNITS))
              for toks in (ta, tb))  # fmt: skip
    shared = [k for k in aa if k in ab]
    if len(shared) >= 2 and shared != [k for k in ab if k in shared]:
        return True
    (from_a, to_a), (from_b, to_b) = _from_to(ta), _from_to(tb)
    return bool(from_a and to_a and from_a != to_a and (from_a, to_a) == (to_b, from_b))


def _from_to(toks: list[_Tok]) -> tuple[str, str]:
    """The first content words after "from" and after the "to"/"into" that follows it."""
    start = next((i for i, t in enumerate(toks) if t.norm == "from"), len(toks))
    end = next((i for i in range(start, len(toks)) if toks[i].norm in ("to", "into")), len(toks))
    source, target = _content(toks[start + 1 : end])[:1], _content(toks[end + 1 :])[:1]
    return (source[0].key if source else ""), (target[0].key if target else "")


def _aliases(ea: list[str], eb: list[str]) -> bool:
    """ "UK" / "Britain", "US" / "United States": a synonym group, or initials."""
    ja, jb = "-".join(ea), "-".join(eb)
    initials_a, initials_b = "".join(w[0] for w in ea), "".join(w[0] for w in eb)
    return any(ja in group and jb in group for group in lex.SYNONYM_GROUPS) or (
        (len(eb) > 1 and ja == initials_b) or (len(ea) > 1 and jb == initials_a))  # fmt: skip


def _lexical_verdict(ta: list[_Tok], tb: list[_Tok], only_a: list[_Tok], only_b: list[_Tok]) -> str:
    """The first lexical rule that fires, or ``""``."""
    if _numbers_differ(ta, tb):
        return "number_mismatch"
    antonym = any(_antonyms(x, y) for x in only_a for y in only_b)
    (neg_a, scope_a), (neg_b, scope_b) = _negation(ta), _negation(tb)
    flipped = neg_a % 2 != neg_b % 2
    if antonym and not flipped:  # "not correct" / "incorrect" cancel out: no rule
        return "antonym"
    keys_a, keys_b = {t.key for t in ta}, {t.key for t in tb}
    if flipped and not antonym and ((scope_a - scope_b) & keys_b or (scope_b - scope_a) & keys_a):
        return "negation_mismatch"  # "cancel" vs "don't cancel"
    for name, index in (("time", _TEMPORAL), ("unit", _UNITS), ("quantifier", _QUANTIFIERS)):
        ga = {index[t.norm] for t in ta if t.norm in index}
        gb = {index[t.norm] for t in tb if t.norm in index}
        if ga - gb and gb - ga:
            return f"{name}_mismatch"
    ent_a = [t.norm for t in only_a if t.cap or t.norm in lex.TECH_TERMS]
    ent_b = [t.norm for t in only_b if t.cap or t.norm in lex.TECH_TERMS]
    if ent_a and ent_b and not _aliases(ent_a, ent_b):
        tech = any(x in lex.TECH_TERMS for x in ent_a) and any(y in lex.TECH_TERMS for y in ent_b)
        return "tech_mismatch" if tech else "entity_mismatch"
    return "order_swap" if _order_swapped(ta, tb) else ""


def _content(toks: Iterable[_Tok]) -> list[_Tok]:
    return [t for t in toks if t.norm not in lex.IGNORABLE]


def _small_edit(ta: list[_Tok], tb: list[_Tok]) -> tuple[str, str] | None:
    """The edited phrases (edit and nearest content word each side) if the texts differ in one
    place by at most ``SMALL_EDIT_WORDS`` content words a side."""
    a = [t for t in ta if t.norm not in lex.FILLERS]
    b = [t for t in tb if t.norm not in lex.FILLERS]
    ops = SequenceMatcher(None, [t.key for t in a], [t.key for t in b], autojunk=False)
    edits = [op for op in ops.get_opcodes() if op[0] != "equal"]
    if len(edits) != 1:
        return None
    _, i1, i2, j1, j2 = edits[0]
    if max(len(_content(a[i1:i2])), len(_content(b[j1:j2]))) > SMALL_EDIT_WORDS:
        return None
    before, after = _content(a[:i1])[-1:], _content(a[i2:])[:1]
    if not before and not after:
        return None
    phrase_a, phrase_b = [*before, *a[i1:i2], *after], [*before, *b[j1:j2], *after]
    return " ".join(t.word or t.norm for t in phrase_a), " ".join(
        t.word or t.norm for t in phrase_b
    )


def _template_verdict(
    query: str, cached: str, embed: Embed | None, threshold: float
) -> GuardVerdict | None:
    """Texts sharing a long identical part (a template, a RAG context) are judged on the
    sentences that differ: they must be as similar as the threshold asks and pass the guards
    on their own. None when the texts share no such part."""
    sa, sb = sentences(query), sentences(cached)
    if len(sa) < 2 and len(sb) < 2:
        return None
    keys_a = [tuple(t.key for t in _tokenize(x)) for x in sa]
    keys_b = [tuple(t.key for t in _tokenize(x)) for x in sb]
    da, db, shared = differing_sentences(sa, sb, keys_a, keys_b)
    da, db = [x for x in da if _content(_tokenize(x))], [x for x in db if _content(_tokenize(x))]
    differing = max(sum(len(_tokenize(x)) for x in part) for part in (da, db))
    if shared < TEMPLATE_SHARED_TOKENS or shared < differing:
        return None
    if not da or not db:  # an instruction added or dropped, or only fillers differ
        return GuardVerdict(not (da or db), "template_insert" if da or db else "ok")
    if embed is None:
        return None
    part_a, part_b = " ".join(da), " ".join(db)
    vectors = np.asarray(embed([part_a, part_b]), dtype=np.float32)
    similarity = float(vectors[0] @ vectors[1])
    if similarity < threshold:
        return GuardVerdict(False, "template_mismatch")
    return check_guards(part_a, part_b, similarity, embed=embed, threshold=threshold)


def check_guards(
    query: str,
    cached: str,
    similarity: float,
    *,
    embed: Embed | None = None,
    threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
) -> GuardVerdict:
    """May the answer cached for ``cached`` serve ``query``? ``similarity`` is their cosine.

    ``embed`` (texts -> unit vectors) enables the small-edit check and the template check
    (texts sharing a long identical part are judged on the sentences that differ, which must
    be ``threshold`` similar); it is not called when the texts match after normalisation or a
    lexical rule decides.
    """
    ta, tb = _tokenize(query), _tokenize(cached)
    if [t.key for t in ta] == [t.key for t in tb]:  # "a + b" / "a - b": only code can differ
        code = code_conflict(query, cached)
        return GuardVerdict(not code, code or "identical")
    only_a, only_b = _diff(ta, tb)
    reason = _lexical_verdict(ta, tb, only_a, only_b) or code_conflict(query, cached)
    if not reason and closed_class_conflict([t.norm for t in ta], [t.norm for t in tb]):
        reason = "closed_class_mismatch"
    if reason:
        return GuardVerdict(False, reason)
    template = _template_verdict(query, cached, embed, threshold)
    if template is not None:
        return template
    if embed is None or similarity >= SMALL_EDIT_SIMILARITY:
        return GuardVerdict(True, "ok")
    phrases = _small_edit(ta, tb) if _content(only_a) or _content(only_b) else None
    if phrases is not None:
        vectors = np.asarray(embed(list(phrases)), dtype=np.float32)
        if float(vectors[0] @ vectors[1]) < PHRASE_SIMILARITY:
            return GuardVerdict(False, "content_mismatch")
    return GuardVerdict(True, "ok")
