"""SIMULATED shoppers: queries, BM25 candidate lists and click logs over a catalog.

Nothing here is real behaviour. The simulator exists so the re-ranking pipeline can be trained,
tested and demonstrated without a production click log; every record it writes carries
``"simulated": true`` and every report built from it says SIMULATED.

The simulated shopper
    * types an attribute query ("black tshirts for men") built from a catalog item's
      article type, base colour and (most of the time) gender;
    * is shown the top-N of an offline BM25 ranking (:class:`Bm25`) of the catalog text;
    * examines position ``p`` (0-based) with probability ``1 / (p + 1) ** eta`` (position bias);
    * clicks an examined item with probability ``noise + (1 - noise) * a``, where the
      attractiveness ``a = relevance / 3 * (floor + (1 - floor) * quality)`` combines
      the attribute relevance grade (0..3, :func:`relevance_grade`) and a quality preference
      ``quality = sigmoid(bias + w_rating * rating + w_discount * discount% - w_price *
      log10(price / median price of its article type))``.

The simulated "truth" label of a (query, item) is ``round(3 * a)`` (0..3): what this shopper
would grade the item; nDCG on held-out simulated queries is computed against it.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from engine.catalog import Product
from engine.catalog.gender import gender_ok
from engine.ltr.features import Candidate, doc_from_product, effective_price, to_float

SIMULATED = "SIMULATED"
_UNKNOWN = frozenset({"", "na", "n/a", "none", "null"})


def _known(value: str | None) -> str | None:
    if value is None or value.strip().lower() in _UNKNOWN:
        return None
    return value.strip()


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class SimQuery:
    """A simulated attribute query (the gender may be left out)."""

    query_id: str
    text: str
    article_type: str
    colour: str
    gender: str | None
    sub_category: str | None = None


def query_id_for(article_type: str, colour: str, gender: str | None) -> str:
    return f"sim-{_slug(article_type)}-{_slug(colour)}-{_slug(gender or 'any')}"


def is_heldout(query_id: str, share: float = 0.3) -> bool:
    """Fixed query split (independent of seeds): held out when sha1(id) % 1000 < share * 1000."""
    return int(hashlib.sha1(query_id.encode()).hexdigest(), 16) % 1000 < round(share * 1000)


def relevance_grade(query: SimQuery, product: Product) -> int:
    """Attribute relevance 0..3 of a product for a simulated query.

    3: article type, colour and gender match; 2: type and colour match, gender differs;
    1: type matches (other colour, gender ok) or same sub-category in the colour (gender ok);
    0: anything else. Unisex items match men's and women's queries.
    """
    same_type = (_known(product.article_type) or "").lower() == query.article_type.lower()
    same_colour = (_known(product.base_colour) or "").lower() == query.colour.lower()
    gender_fits = gender_ok(query.gender, product.gender)
    if same_type and same_colour:
        return 3 if gender_fits else 2
    if same_type and gender_fits:
        return 1
    same_sub = (
        query.sub_category is not None
        and (_known(product.sub_category) or "").lower() == query.sub_category.lower()
    )
    if same_sub and same_colour and gender_fits:
        return 1
    return 0


def make_queries(
    products: Sequence[Product], n: int | None = None, seed: int = 0, gender_share: float = 0.7
) -> list[SimQuery]:
    """Distinct simulated queries from the catalog's (type, colour, gender) combinations.

    Deterministic for a given catalog and ``seed`` (order by sha1, not by input order).
    """
    combos: dict[str, SimQuery] = {}
    for p in products:
        at, colour = _known(p.article_type), _known(p.base_colour)
        if at is None or colour is None:
            continue
        gender = _known(p.gender)
        rng = random.Random(f"simq:{seed}:{at}:{colour}:{gender}")
        use_gender = gender if gender is not None and rng.random() < gender_share else None
        qid = query_id_for(at, colour, use_gender)
        if qid in combos:
            continue
        words = f"{colour} {at}".lower()
        text = f"{words} for {use_gender.lower()}" if use_gender else words
        combos[qid] = SimQuery(qid, text, at, colour, use_gender, _known(p.sub_category))
    order = sorted(combos, key=lambda q: hashlib.sha1(f"{seed}:{q}".encode()).hexdigest())
    chosen = order if n is None else order[:n]
    return [combos[q] for q in chosen]


# --------------------------------------------------------------------------- offline BM25

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric tokens with a light plural strip (``tshirts`` -> ``tshirt``)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def product_text(p: Product) -> str:
    return " ".join(
        v for v in (p.title, p.article_type, p.base_colour, p.gender, p.usage) if v is not None
    )


class Bm25:
    """A small in-memory BM25 (k1=1.2, b=0.75) over product text: SIMULATED candidate source."""

    def __init__(self, products: Sequence[Product], k1: float = 1.2, b: float = 0.75) -> None:
        from scipy.sparse import csc_matrix

        self.ids = [p.id for p in products]
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for i, p in enumerate(products):
            for tok in tokenize(product_text(p)):
                rows.append(i)
                cols.append(vocab.setdefault(tok, len(vocab)))
        n = len(products)
        tf = csc_matrix(
            (np.ones(len(rows)), (rows, cols)), shape=(n, max(1, len(vocab))), dtype=np.float64
        )
        tf.sum_duplicates()
        self.vocab = vocab
        self.tf = tf
        dl = np.asarray(tf.sum(axis=1)).ravel()
        avgdl = float(dl.mean()) if n else 1.0
        self.norm = k1 * (1.0 - b + b * dl / max(avgdl, 1e-9))
        df = np.diff(tf.indptr)
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        self.k1 = k1

    def scores(self, text: str) -> np.ndarray:
        out = np.zeros(len(self.ids))
        for tok in set(tokenize(text)):
            j = self.vocab.get(tok)
            if j is None:
                continue
            start, end = self.tf.indptr[j], self.tf.indptr[j + 1]
            rows = self.tf.indices[start:end]
            f = self.tf.data[start:end]
            out[rows] += self.idf[j] * f * (self.k1 + 1.0) / (f + self.norm[rows])
        return out

    def search(self, text: str, k: int) -> list[tuple[str, float]]:
        """Top ``k`` (id, score) with score > 0; ties broken by catalog order."""
        s = self.scores(text)
        idx = np.flatnonzero(s > 0)
        order = idx[np.lexsort((idx, -s[idx]))][:k]
        return [(self.ids[i], float(s[i])) for i in order]


# --------------------------------------------------------------------------- the shopper


@dataclass(frozen=True)
class ClickModel:
    """Parameters of the SIMULATED shopper (see the module docstring)."""

    eta: float = 1.0
    noise: float = 0.02
    floor: float = 0.1
    bias: float = -0.5
    w_rating: float = 1.5
    w_discount: float = 0.05
    w_price: float = 2.0


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class CatalogStats:
    """What the quality preference compares against: per-type median log10 price, rating scale."""

    median_log_price: Mapping[str, float]
    global_median_log_price: float
    rating_scale: float

    @classmethod
    def of(cls, products: Sequence[Product]) -> CatalogStats:
        by_type: dict[str, list[float]] = defaultdict(list)
        every: list[float] = []
        ratings: list[float] = []
        for p in products:
            price = effective_price(doc_from_product(p))
            if price == price and price > 0:
                v = math.log10(price)
                by_type[(p.article_type or "").lower()].append(v)
                every.append(v)
            r = to_float(p.rating)
            if r == r and r > 0:
                ratings.append(r)
        scale = float(np.percentile(ratings, 95)) if ratings else 5.0
        return cls(
            {t: float(np.median(v)) for t, v in by_type.items()},
            float(np.median(every)) if every else 3.0,
            max(scale, 1e-9),
        )


def quality(product: Product, stats: CatalogStats, cm: ClickModel) -> float:
    """The SIMULATED shopper's taste for rating, discount and a lower price, in (0, 1)."""
    doc = doc_from_product(product)
    z = cm.bias
    rating = to_float(product.rating)
    if rating == rating:
        z += cm.w_rating * min(max(rating / stats.rating_scale, 0.0), 1.0)
    pct = to_float(doc.get("discount_pct"))
    if pct == pct:
        z += cm.w_discount * pct
    price = effective_price(doc)
    if price == price and price > 0:
        ref = stats.median_log_price.get(
            (product.article_type or "").lower(), stats.global_median_log_price
        )
        z -= cm.w_price * (math.log10(price) - ref)
    return sigmoid(z)


def attractiveness(grade: int, q: float, cm: ClickModel) -> float:
    return grade / 3.0 * (cm.floor + (1.0 - cm.floor) * q)


def truth_label(grade: int, q: float, cm: ClickModel) -> int:
    """The SIMULATED shopper's graded preference 0..3 (the nDCG label)."""
    return int(round(3.0 * attractiveness(grade, q, cm)))


# --------------------------------------------------------------------------- data


@dataclass
class SimList:
    """One simulated query: its candidate list (BM25 order) and the simulated truth labels."""

    query: SimQuery
    candidates: list[Candidate]
    truth: dict[str, int]
    attract: dict[str, float]
    reference_time: float

    @property
    def heldout(self) -> bool:
        return is_heldout(self.query.query_id)


@dataclass(slots=True)
class ClickRecord:
    """One impression of a SIMULATED click log (the documented JSONL format)."""

    query_id: str
    query: str
    doc_id: str
    position: int
    clicked: bool
    score: float
    session: int
    timestamp: float
    signals: dict[str, float] = field(default_factory=dict)
    simulated: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "query": self.query,
            "doc_id": self.doc_id,
            "position": self.position,
            "clicked": self.clicked,
            "score": self.score,
            "session": self.session,
            "timestamp": self.timestamp,
            "signals": self.signals,
            "simulated": self.simulated,
        }


def reference_time_of(products: Iterable[Product]) -> float:
    """A fixed "now" for a catalog: one day after its newest ``added_at`` (0 when none)."""
    times = [p.added_at for p in products if p.added_at is not None]
    return float(max(times) + 86400) if times else 0.0


def build_lists(
    products: Sequence[Product],
    queries: Sequence[SimQuery],
    *,
    top_n: int = 60,
    click_model: ClickModel | None = None,
    bm25: Bm25 | None = None,
    reference_time: float | None = None,
) -> list[SimList]:
    """BM25 candidate lists and SIMULATED truth labels; queries without a relevant candidate
    (every truth label 0) are dropped."""
    cm = click_model or ClickModel()
    index = bm25 or Bm25(products)
    by_id = {p.id: p for p in products}
    stats = CatalogStats.of(products)
    ref = reference_time_of(products) if reference_time is None else reference_time
    qual = {p.id: quality(p, stats, cm) for p in products}
    out: list[SimList] = []
    for q in queries:
        hits = index.search(q.text, top_n)
        cands: list[Candidate] = []
        truth: dict[str, int] = {}
        attract: dict[str, float] = {}
        for doc_id, score in hits:
            p = by_id[doc_id]
            grade = relevance_grade(q, p)
            truth[doc_id] = truth_label(grade, qual[doc_id], cm)
            attract[doc_id] = attractiveness(grade, qual[doc_id], cm)
            cands.append(Candidate(doc_id, score, doc_from_product(p), {"bm25": score}))
        if any(v > 0 for v in truth.values()):
            out.append(SimList(q, cands, truth, attract, ref))
    return out


def simulate_clicks(
    lists: Sequence[SimList],
    *,
    sessions: int = 30,
    click_model: ClickModel | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[ClickRecord]:
    """Per query, ``sessions`` SIMULATED sessions over the list in its shown (BM25) order."""
    cm = click_model or ClickModel()
    rng = np.random.default_rng(seed)
    out: list[ClickRecord] = []
    for sl in tqdm(lists, desc="simulating clicks (SIMULATED)", disable=not progress):
        n = len(sl.candidates)
        examine = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), cm.eta)
        attract = np.array([sl.attract[c.doc_id] for c in sl.candidates])
        p_click = examine * (cm.noise + (1.0 - cm.noise) * attract)
        draws = rng.random((sessions, n)) < p_click
        signals = [
            {k: float(v) for k, v in c.signals.items() if v is not None} for c in sl.candidates
        ]
        for s in range(sessions):
            for pos, cand in enumerate(sl.candidates):
                out.append(
                    ClickRecord(
                        query_id=sl.query.query_id,
                        query=sl.query.text,
                        doc_id=cand.doc_id,
                        position=pos,
                        clicked=bool(draws[s, pos]),
                        score=float(cand.score),
                        session=s,
                        timestamp=sl.reference_time,
                        signals=signals[pos],  # shared between sessions (read-only)
                    )
                )
    return out


def simulate(
    products: Sequence[Product],
    *,
    n_queries: int | None = None,
    sessions: int = 30,
    top_n: int = 60,
    seed: int = 0,
    click_model: ClickModel | None = None,
    progress: bool = False,
) -> tuple[list[SimList], list[ClickRecord]]:
    """Simulated queries, candidate lists and a click log over ``products`` (all SIMULATED)."""
    queries = make_queries(products, n_queries, seed)
    lists = build_lists(products, queries, top_n=top_n, click_model=click_model)
    clicks = simulate_clicks(
        lists, sessions=sessions, click_model=click_model, seed=seed, progress=progress
    )
    return lists, clicks
