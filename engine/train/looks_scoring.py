"""How a trained compatibility model scores whole looks, fitted after training: the per-slot-pair
calibration of raw scores, the reference items each item's scores are standardised against,
and the look-score rule chosen on validation looks (:meth:`CompatModel.look_score`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from engine.looks.compat import LOOK_RULES, SLOT_INDEX, CompatModel
from engine.train.classification import roc_auc
from engine.train.looks_benchmark import compatibility_pairs, model_look_scores

logger = logging.getLogger(__name__)

# ``data`` below is an :class:`engine.train.looks.TrainData` (not imported: that module
# imports this one)


def calibrate(model: CompatModel, data: Any, n: int = 2000, seed: int = 0) -> list[list[float]]:
    """Per slot pair: mean and std of raw scores of random training-item pairs."""
    from engine.looks.compat import PAIRS

    rng = np.random.default_rng(seed)
    slots = {i: s for s, i in SLOT_INDEX.items()}
    table = [[0.0, 1.0] for _ in PAIRS]
    joint = data.vectors.joint
    for k, (a, b) in enumerate(PAIRS):
        pa, pb = data.neg_pools.get(a), data.neg_pools.get(b)
        if pa is None or pb is None or len(pa) == 0 or len(pb) == 0:
            continue
        xa = joint[pa[rng.integers(0, len(pa), n)]]
        xb = joint[pb[rng.integers(0, len(pb), n)]]
        ea = model.pair_embeddings(xa, slots[a], slots[b])
        eb = model.pair_embeddings(xb, slots[b], slots[a])
        raw = (ea * eb).sum(axis=1)
        table[k] = [round(float(raw.mean()), 6), round(float(raw.std()), 6)]
    return table


N_REFERENCES = 256  # reference items per slot for the item-calibrated look score


def reference_items(data: Any, n: int = N_REFERENCES, seed: int = 0) -> dict[str, np.ndarray]:
    """Per slot, the joint vectors of up to ``n`` training-split items (fixed by ``seed``): the
    references :meth:`CompatModel.look_score` standardises each item's scores against."""
    rng = np.random.default_rng(seed + 17)
    names = {i: s for s, i in SLOT_INDEX.items()}
    out: dict[str, np.ndarray] = {}
    for idx, rows in sorted(data.neg_pools.items()):
        if len(rows) < 2:
            continue
        pick = rng.choice(rows, size=min(n, len(rows)), replace=False)
        out[names[int(idx)]] = data.vectors.joint[np.sort(pick)].astype(np.float32)
    return out


def choose_look_rule(model: CompatModel, data: Any, seed: int = 0) -> dict[str, float]:
    """Set ``model.config['look_rule']`` to the :data:`LOOK_RULES` entry with the best
    compatibility AUC on the validation looks (ties: the simpler rule); returns every rule's
    AUC. Needs the model's references for the item rules."""
    comp = compatibility_pairs(
        data.val_looks, data.train_pools, known=lambda i: i in data.vectors, seed=seed
    )
    if not comp or len({lab for _, lab in comp}) < 2:
        return {}
    labels = [lab for _, lab in comp]
    scores: dict[str, float] = {}
    for rule in LOOK_RULES:
        model.config["look_rule"] = rule
        looks = model_look_scores(model, data.vectors, [items for items, _ in comp])
        scores[rule] = roc_auc(labels, looks)
    best = max(LOOK_RULES, key=lambda r: (round(scores[r], 4), -LOOK_RULES.index(r)))
    model.config["look_rule"] = best
    logger.info(
        "look score rule %s (validation AUC %s)", best, {k: round(v, 4) for k, v in scores.items()}
    )
    return scores
