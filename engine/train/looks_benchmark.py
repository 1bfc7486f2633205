"""Outfit-compatibility benchmark questions over looks (used by training and evaluation).

* Fill in the blank (FITB): a look with one item hidden; choose it among ``n_choices`` items
  of the same slot (the others drawn at random from the candidate pool of that slot).
* Compatibility: every real look, and a corrupted copy with one item swapped for a random item
  of the same slot; a scorer should rank real looks above corrupted ones (ROC AUC).
* Partners: (anchor, held-out partner) pairs for complete-the-look recall@k.

Scorers are functions ``score(context_ids, context_slots, candidate_ids, candidate_slot)``
returning one number per candidate: the compatibility of each candidate with the context
items (the rest of the look). :func:`model_scorer` wraps the learned model,
:class:`CoCategoryBaseline` is the co-category popularity baseline.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.looks.compat import CompatModel, soft_min
from engine.looks.format import Look
from engine.train.classification import fitb_accuracy, roc_auc
from engine.train.looks_vectors import ItemVectors

Scorer = Callable[[Sequence[str], Sequence[str], Sequence[str], str], np.ndarray]


@dataclass(frozen=True)
class FitbQuestion:
    look_id: str
    context_ids: tuple[str, ...]
    context_slots: tuple[str, ...]
    slot: str
    choices: tuple[str, ...]
    answer: int


def usable_items(look: Look, known: Callable[[str], bool]) -> list[tuple[str, str]]:
    """(item_id, slot) of the look's items that have a slot and pass ``known``."""
    return [(it.item_id, it.slot) for it in look.items if it.slot and known(it.item_id)]


def fitb_questions(
    looks: Sequence[Look],
    pools: Mapping[str, Sequence[str]],
    *,
    known: Callable[[str], bool] = lambda _: True,
    n_choices: int = 4,
    seed: int = 0,
    limit: int | None = None,
) -> list[FitbQuestion]:
    """One question per look (a random item hidden), ``n_choices`` same-slot choices."""
    rng = random.Random(seed)
    out: list[FitbQuestion] = []
    for look in looks:
        items = usable_items(look, known)
        if len(items) < 2:
            continue
        pos = rng.randrange(len(items))
        hidden, slot = items[pos]
        in_look = {i for i, _ in items}
        pool = pools.get(slot, ())
        negatives: list[str] = []
        tries = 0
        while len(negatives) < n_choices - 1 and tries < 50 * n_choices and pool:
            tries += 1
            cand = pool[rng.randrange(len(pool))]
            if cand not in in_look and cand not in negatives:
                negatives.append(cand)
        if len(negatives) < n_choices - 1:
            continue
        choices = [hidden, *negatives]
        rng.shuffle(choices)
        context = [it for k, it in enumerate(items) if k != pos]
        out.append(
            FitbQuestion(
                look_id=look.look_id,
                context_ids=tuple(i for i, _ in context),
                context_slots=tuple(s for _, s in context),
                slot=slot,
                choices=tuple(choices),
                answer=choices.index(hidden),
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


def compatibility_pairs(
    looks: Sequence[Look],
    pools: Mapping[str, Sequence[str]],
    *,
    known: Callable[[str], bool] = lambda _: True,
    seed: int = 0,
    limit: int | None = None,
) -> list[tuple[list[tuple[str, str]], int]]:
    """[(items, 1) real look, (items, 0) same look with one item swapped] for each look."""
    rng = random.Random(seed + 1)
    out: list[tuple[list[tuple[str, str]], int]] = []
    for look in looks:
        items = usable_items(look, known)
        if len(items) < 2:
            continue
        pos = rng.randrange(len(items))
        slot = items[pos][1]
        in_look = {i for i, _ in items}
        pool = pools.get(slot, ())
        swap = None
        for _ in range(50):
            if not pool:
                break
            cand = pool[rng.randrange(len(pool))]
            if cand not in in_look:
                swap = cand
                break
        if swap is None:
            continue
        fake = list(items)
        fake[pos] = (swap, slot)
        out.append((items, 1))
        out.append((fake, 0))
        if limit is not None and len(out) >= 2 * limit:
            break
    return out


def partner_pairs(
    looks: Sequence[Look], *, known: Callable[[str], bool] = lambda _: True
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((anchor id, slot), (partner id, slot)) for every other item of every look; the anchor
    is ``extra.anchor_id`` for mined looks, else the first item."""
    out: list[tuple[tuple[str, str], tuple[str, str]]] = []
    for look in looks:
        items = usable_items(look, known)
        if len(items) < 2:
            continue
        anchor_id = str(look.extra.get("anchor_id") or items[0][0])
        anchor = next((it for it in items if it[0] == anchor_id), items[0])
        out.extend((anchor, it) for it in items if it != anchor)
    return out


def fitb_scores(questions: Sequence[FitbQuestion], scorer: Scorer) -> list[list[float]]:
    return [
        [float(s) for s in scorer(q.context_ids, q.context_slots, q.choices, q.slot)]
        for q in questions
    ]


def look_scores(looks: Sequence[Sequence[tuple[str, str]]], scorer: Scorer) -> list[float]:
    """Score of each look: :func:`~engine.looks.compat.soft_min` of its pairwise scores."""
    out = []
    for items in looks:
        pairs = [
            float(scorer([items[i][0]], [items[i][1]], [items[j][0]], items[j][1])[0])
            for i in range(len(items))
            for j in range(i + 1, len(items))
        ]
        out.append(soft_min(pairs))
    return out


def model_look_scores(
    model: CompatModel, vectors: ItemVectors, looks: Sequence[Sequence[tuple[str, str]]]
) -> list[float]:
    """Score of each look as the model scores a whole look (:meth:`CompatModel.look_score`):
    on the items' joint vectors and their image vectors (the text vector without a photo)."""
    out = []
    for items in looks:
        ids = [i for i, _ in items]
        rows = vectors.rows(ids)
        image = np.where(vectors.has_image[rows, None], vectors.image[rows], vectors.text[rows])
        out.append(
            model.look_score(vectors.joint[rows], [s for _, s in items], image_vectors=image)
        )
    return out


def model_scorer(model: CompatModel, vectors: ItemVectors, kind: str = "joint") -> Scorer:
    """Mean compatibility of each candidate with every context item under the model."""

    def score(
        context_ids: Sequence[str],
        context_slots: Sequence[str],
        candidate_ids: Sequence[str],
        candidate_slot: str,
    ) -> np.ndarray:
        cand = vectors.get(list(candidate_ids), kind)
        total = np.zeros(len(candidate_ids), dtype=np.float64)
        for cid, cslot in zip(context_ids, context_slots, strict=True):
            total += model.score(vectors.get([cid], kind)[0], cslot, cand, candidate_slot)
        return (total / max(len(context_ids), 1)).astype(np.float32)

    return score


class CoCategoryBaseline:
    """Co-category popularity: how often the candidate's article type appeared with the context
    items' article types in the training looks (add-one smoothed log-probabilities, averaged
    over context items). Items of the same type score the same: ties are broken at random by
    the FITB metric (fractional credit)."""

    def __init__(self, type_of: Mapping[str, str | None]) -> None:
        self.type_of = type_of
        self.pair: Counter[tuple[str, str]] = Counter()
        self.single: Counter[str] = Counter()
        self.types: set[str] = set()

    def _t(self, item_id: str) -> str:
        return self.type_of.get(item_id) or "?"

    def fit(self, looks: Sequence[Look]) -> CoCategoryBaseline:
        for look in looks:
            types = [self._t(it.item_id) for it in look.items]
            self.types.update(types)
            for i, a in enumerate(types):
                self.single[a] += 1
                for j, b in enumerate(types):
                    if i != j:
                        self.pair[(a, b)] += 1
        return self

    def type_score(self, context_type: str, candidate_type: str) -> float:
        n_types = max(len(self.types), 1)
        return math.log(
            (self.pair[(context_type, candidate_type)] + 1.0)
            / (self.single[context_type] + n_types)
        )

    def __call__(
        self,
        context_ids: Sequence[str],
        context_slots: Sequence[str],
        candidate_ids: Sequence[str],
        candidate_slot: str,
    ) -> np.ndarray:
        ctx = [self._t(i) for i in context_ids]
        out = []
        for cid in candidate_ids:
            ct = self._t(cid)
            out.append(sum(self.type_score(t, ct) for t in ctx) / max(len(ctx), 1))
        return np.asarray(out, dtype=np.float32)


def slot_pools(
    items: Sequence[tuple[str, str | None]], known: Callable[[str], bool] = lambda _: True
) -> dict[str, list[str]]:
    """slot -> item ids (in input order) of the items that have a slot and pass ``known``."""
    pools: dict[str, list[str]] = defaultdict(list)
    for item_id, slot in items:
        if slot and known(item_id):
            pools[slot].append(item_id)
    return dict(pools)


def partner_recall(
    model: CompatModel,
    vectors: ItemVectors,
    pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]],
    pools: Mapping[str, Sequence[str]],
    type_of: Mapping[str, str | None],
    *,
    k: int = 10,
    kind: str = "joint",
) -> dict[str, float]:
    """Recall@k of held-out partners when ranking each partner slot's pool for the anchor,
    plus the share of the top k that has the partner's article type and the random recall."""
    by_slots: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    pool_sets = {slot: set(ids) for slot, ids in pools.items()}
    for (aid, aslot), (pid, pslot) in pairs:
        if pid in pool_sets.get(pslot, set()):
            by_slots[(aslot, pslot)].append((aid, pid))
    hits = type_hits = total = 0
    random_recall = 0.0
    for (aslot, pslot), group in by_slots.items():
        pool = list(pools[pslot])
        pool_emb = model.pair_embeddings(vectors.get(pool, kind), pslot, aslot)
        anchors = model.pair_embeddings(vectors.get([a for a, _ in group], kind), aslot, pslot)
        scores = anchors @ pool_emb.T
        pos = {p: r for r, p in enumerate(pool)}
        for row, (aid, pid) in enumerate(group):
            s = scores[row].copy()
            if aid in pos:
                s[pos[aid]] = -np.inf
            top = np.argpartition(-s, min(k, len(pool) - 1))[:k]
            top_ids = [pool[t] for t in top]
            hits += int(pid in top_ids)
            want = type_of.get(pid)
            type_hits += sum(1 for t in top_ids if type_of.get(t) == want)
            total += 1
            random_recall += min(1.0, k / max(len(pool) - (aid in pos), 1))
    if total == 0:
        raise ValueError("no partner pairs with their partner in a candidate pool")
    return {
        "recall": hits / total,
        "type_precision": type_hits / (total * k),
        "random_recall": random_recall / total,
        "pairs": float(total),
    }


def run_benchmark(
    model: CompatModel,
    vectors: ItemVectors,
    looks: Sequence[Look],
    pools: Mapping[str, Sequence[str]],
    *,
    baseline: CoCategoryBaseline | None = None,
    type_of: Mapping[str, str | None] | None = None,
    seed: int = 0,
    limit: int | None = None,
    n_choices: int = 4,
    k: int = 10,
) -> dict[str, float]:
    """FITB accuracy, compatibility AUC and partner recall@k of ``model`` on ``looks`` (and
    the baseline's FITB accuracy), with candidates/negatives drawn from ``pools``."""

    def known(i: str) -> bool:
        return i in vectors

    scorer = model_scorer(model, vectors)
    questions = fitb_questions(
        looks, pools, known=known, n_choices=n_choices, seed=seed, limit=limit
    )
    if not questions:
        raise ValueError("no FITB question could be built from these looks")
    answers = [q.answer for q in questions]
    out: dict[str, float] = {
        "fitb_accuracy": fitb_accuracy(fitb_scores(questions, scorer), answers),
        "fitb_questions": float(len(questions)),
    }
    if baseline is not None:
        out["fitb_accuracy_popularity_baseline"] = fitb_accuracy(
            fitb_scores(questions, baseline), answers
        )
    comp = compatibility_pairs(looks, pools, known=known, seed=seed, limit=limit)
    if comp:
        scores = model_look_scores(model, vectors, [items for items, _ in comp])
        out["compatibility_auc"] = roc_auc([lab for _, lab in comp], scores)
        out["compatibility_looks"] = float(len(comp))
    if type_of is not None:
        pairs = partner_pairs(looks, known=known)
        if limit is not None:
            pairs = pairs[: 3 * limit]
        if pairs:
            pr = partner_recall(model, vectors, pairs, pools, type_of, k=k)
            out[f"partner_recall_at_{k}"] = pr["recall"]
            out[f"partner_type_precision_at_{k}"] = pr["type_precision"]
            out[f"partner_recall_at_{k}_random"] = pr["random_recall"]
            out["partner_pairs"] = pr["pairs"]
    return out
