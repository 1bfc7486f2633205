"""Query arithmetic ("this shirt but in black, not striped"): pure parts.

* :func:`parse_modifier` splits a shopper's modifier into wanted and unwanted words
  (``not`` / ``no`` / ``without`` / a leading ``-`` negate until ``but`` / ``with`` / ``in`` or
  punctuation);
* :func:`compose_vector` builds ``q = normalize(f_image + w * f_text(wanted) -
  w_neg * f_text(unwanted))`` in the joint space;
* :class:`AttributeLexicon` maps words to attribute values of the joint model's attribute
  vocabulary (``"red"`` -> ``base_colour=Red``, ``"sleeveless"`` -> ``sleeve_length=Sleeveless``,
  ``"navy blue"`` -> ``base_colour=Navy Blue``), which become the soft filter: similarity times
  ``P(wanted value)`` and ``1 - P(unwanted value)`` (:func:`soft_factor` is the client-side
  replica of the painless script in :mod:`engine.queries`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.documents import attr_prob_field
from engine.queries import DEFAULT_FLOOR

# Attributes a word may softly filter on (of the joint model's vocabulary).
SOFT_ATTRIBUTES: tuple[str, ...] = (
    "base_colour",
    "pattern",
    "sleeve_length",
    "neck",
    "article_type",
    "gender",
    "usage",
)

NEGATIONS = frozenset({"not", "no", "without", "non", "except", "minus", "nor", "never"})
SCOPE_END = frozenset({"but", "with", "in", "instead", "rather"})
_STOPWORD_TEXT = (
    "a an the this that these those it its one ones same similar like but in on with and or "
    "for of to as is are be please i me my want show find something item items thing version "
    "style kind type look looking instead also just only very much more less some any make "
    "made shade colour color coloured colored rather than other another exactly"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
PLACEHOLDER_VALUES = frozenset({"", "na", "n/a", "none", "null", "unknown", "other", "others"})

# Shopper words -> a vocabulary value's normalised form (used only when that value exists).
ALIASES: dict[str, tuple[str, ...]] = {
    "gray": ("grey",),
    "navy": ("navyblue",),
    "golden": ("gold",),
    "offwhite": ("offwhite",),
    "stripe": ("striped",),
    "stripy": ("striped",),
    "print": ("printed",),
    "check": ("checked",),
    "checkered": ("checked",),
    "plaid": ("checked",),
    "plain": ("solid",),
    "tee": ("tshirt",),
    "sleeveless": ("sleeveless",),
    "halfsleeve": ("shortsleeve",),
    "fullsleeve": ("longsleeve",),
    "man": ("men",),
    "woman": ("women",),
    "ladies": ("women",),
    "lady": ("women",),
    "boy": ("boys",),
    "girl": ("girls",),
}

_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def _stem(token: str) -> str:
    """A light plural/possessive stemmer ("dresses" -> "dress", "men's" -> "men")."""
    t = token.lower().replace("'s", "").replace("'", "").replace("-", "")
    if len(t) <= 3:
        return t
    if t.endswith("sses"):
        return t[:-2]
    if t.endswith("ies") and len(t) > 4:
        return t[:-3] + "y"
    if t.endswith("es") and t[:-2].endswith(("ss", "x", "ch", "sh")):
        return t[:-2]
    if t.endswith("s") and not t.endswith(("ss", "us", "is")):
        return t[:-1]
    return t


def normalize_phrase(text: str) -> str:
    """Joined stems of a phrase: "Navy Blue" -> "navyblue", "T-Shirts" -> "tshirt"."""
    return "".join(_stem(w) for w in _WORD.findall(text.lower()))


@dataclass(frozen=True)
class Modifier:
    """Wanted and unwanted content words of a modifier text (order kept, no duplicates)."""

    wanted: tuple[str, ...] = ()
    unwanted: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.wanted and not self.unwanted

    def merged(self, wanted: Iterable[str] = (), unwanted: Iterable[str] = ()) -> Modifier:
        """This modifier plus explicit word lists (each entry may be a phrase)."""
        w = list(self.wanted)
        u = list(self.unwanted)
        for phrase in wanted:
            w.extend(_content_words(phrase))
        for phrase in unwanted:
            u.extend(_content_words(phrase))
        return Modifier(tuple(dict.fromkeys(w)), tuple(dict.fromkeys(u)))


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def parse_modifier(text: str | None) -> Modifier:
    """Split a modifier into wanted and unwanted words.

    >>> parse_modifier("this shirt but in black, not striped")
    Modifier(wanted=('shirt', 'black'), unwanted=('striped',))
    """
    if not text:
        return Modifier()
    wanted: list[str] = []
    unwanted: list[str] = []
    for clause in re.split(r"[,;.!?/()]+", text.lower()):
        negated = False
        for raw in clause.split():
            if raw.startswith("-") and len(raw) > 1:
                words = _WORD.findall(raw)
                unwanted.extend(w for w in words if w not in STOPWORDS)
                continue
            for w in _WORD.findall(raw):
                if w in NEGATIONS or w.endswith("n't"):
                    negated = True
                    continue
                if w in SCOPE_END:
                    negated = False
                    continue
                if w in STOPWORDS:
                    continue
                (unwanted if negated else wanted).append(w)
    return Modifier(tuple(dict.fromkeys(wanted)), tuple(dict.fromkeys(unwanted)))


@dataclass(frozen=True)
class AttributeMatch:
    """A phrase of the modifier that names a value of an attribute."""

    attribute: str
    value: str
    phrase: str

    @property
    def field(self) -> str:
        """The document field holding its probability (``attr_prob.<attr>.<value>``)."""
        return attr_prob_field(self.attribute, self.value)


class AttributeLexicon:
    """Normalised phrase -> attribute values, built from an attribute vocabulary."""

    def __init__(
        self,
        vocab: Mapping[str, Sequence[str]],
        attributes: Sequence[str] = SOFT_ATTRIBUTES,
        max_ngram: int = 3,
    ) -> None:
        self.max_ngram = max_ngram
        self._index: dict[str, list[tuple[str, str]]] = {}
        for attr in attributes:
            for value in vocab.get(attr, ()):
                if str(value).strip().lower() in PLACEHOLDER_VALUES:
                    continue
                key = normalize_phrase(str(value))
                if key:
                    self._index.setdefault(key, []).append((attr, str(value)))

    def __len__(self) -> int:
        return len(self._index)

    def lookup(self, phrase: str) -> list[tuple[str, str]]:
        """(attribute, value) pairs a phrase names (aliases resolved)."""
        key = normalize_phrase(phrase)
        found = list(self._index.get(key, []))
        for alias in ALIASES.get(key, ()):
            for pair in self._index.get(alias, []):
                if pair not in found:
                    found.append(pair)
        return found

    def match(self, words: Sequence[str]) -> list[AttributeMatch]:
        """Greedy longest match of consecutive words (n-grams up to ``max_ngram``)."""
        out: list[AttributeMatch] = []
        seen: set[tuple[str, str]] = set()
        i = 0
        while i < len(words):
            step = 1
            for n in range(min(self.max_ngram, len(words) - i), 0, -1):
                phrase = " ".join(words[i : i + n])
                pairs = self.lookup(phrase)
                if pairs:
                    for attr, value in pairs:
                        if (attr, value) not in seen:
                            seen.add((attr, value))
                            out.append(AttributeMatch(attr, value, phrase))
                    step = n
                    break
            i += step
        return out


def soft_fields(
    lexicon: AttributeLexicon, modifier: Modifier
) -> tuple[list[AttributeMatch], list[AttributeMatch]]:
    """Wanted and unwanted attribute matches of a modifier (a value both wanted and unwanted
    is dropped from the unwanted side)."""
    wanted = lexicon.match(modifier.wanted)
    keys = {(m.attribute, m.value) for m in wanted}
    unwanted = [m for m in lexicon.match(modifier.unwanted) if (m.attribute, m.value) not in keys]
    return wanted, unwanted


def compose_vector(
    image: np.ndarray,
    wanted: np.ndarray | None = None,
    unwanted: np.ndarray | None = None,
    *,
    text_weight: float = 1.0,
    negative_weight: float = 0.5,
) -> np.ndarray:
    """``normalize(image + text_weight * wanted - negative_weight * unwanted)`` (float32)."""
    q = np.asarray(image, dtype=np.float32).reshape(-1).copy()
    if wanted is not None:
        q += float(text_weight) * np.asarray(wanted, dtype=np.float32).reshape(-1)
    if unwanted is not None:
        q -= float(negative_weight) * np.asarray(unwanted, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(q))
    if n == 0.0 or not np.isfinite(n):
        raise ValueError("composed query vector is zero")
    return (q / n).astype(np.float32)


def soft_factor(
    probs: Mapping[str, float],
    wanted: Sequence[str],
    unwanted: Sequence[str],
    floor: float = DEFAULT_FLOOR,
) -> float:
    """Client-side replica of the soft-filter script: ``prod max(p_w, floor) *
    prod max(1 - p_u, floor)`` with a missing probability read as 0."""
    f = 1.0
    for w in wanted:
        f *= max(float(probs.get(w, 0.0)), floor)
    for u in unwanted:
        f *= max(1.0 - float(probs.get(u, 0.0)), floor)
    return f


def flatten_attr_prob(attr_prob: Mapping[str, object] | None) -> dict[str, float]:
    """``{"base_colour": {"red": 0.9}}`` (a document's ``attr_prob``) ->
    ``{"attr_prob.base_colour.red": 0.9}``."""
    out: dict[str, float] = {}
    if not attr_prob:
        return out
    for attr, values in attr_prob.items():
        if isinstance(values, Mapping):
            for value, p in values.items():
                if isinstance(p, int | float):
                    out[f"attr_prob.{attr}.{value}"] = float(p)
    return out
