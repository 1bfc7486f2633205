"""Fitting the GBDT + LR click model with scikit-learn (offline; serving loads the JSON that
:func:`train_model` returns, :class:`engine.ltr.model.LtrModel`).

The trees and the logistic regression over their one-hot leaves are fit on disjoint query
groups (He et al. 2014); :func:`to_ltr_model` folds the LR weights into the trees' leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import InvalidInput
from engine.ltr.features import FEATURES, VALUE_NAMES, fit_fill_values, impute
from engine.ltr.model import LtrModel, Tree


@dataclass(frozen=True)
class TrainParams:
    """GBDT + LR hyper-parameters.

    Defaults chosen on SIMULATED clicks over the full shared catalog (600 training queries,
    3 seeds; never on the sample's held-out queries): small, strongly regularised trees were
    the most stable.
    """

    n_estimators: int = 30
    max_depth: int = 2
    learning_rate: float = 0.1
    subsample: float = 0.8
    min_samples_leaf: int = 50
    lr_c: float = 0.3  # inverse L2 strength of the logistic regression
    lr_share: float = 0.5  # share of query groups held for the LR (0: fit both on all data)

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.max_depth < 1 or self.min_samples_leaf < 1:
            raise InvalidInput("n_estimators, max_depth and min_samples_leaf must be >= 1")
        if not 0 < self.learning_rate <= 1 or not 0 < self.subsample <= 1:
            raise InvalidInput("learning_rate and subsample must be in (0, 1]")
        if self.lr_c <= 0 or not 0 <= self.lr_share < 1:
            raise InvalidInput("lr_c must be > 0 and lr_share in [0, 1)")


def _split_groups(
    groups: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Boolean masks (trees, lr) splitting the query groups; None when too few groups."""
    uniq = np.unique(groups)
    if share <= 0 or uniq.size < 4:
        return None
    rng = np.random.default_rng(seed)
    lr_groups = set(rng.permutation(uniq)[: max(1, round(uniq.size * share))].tolist())
    lr_mask = np.array([g in lr_groups for g in groups.tolist()])
    return ~lr_mask, lr_mask


@dataclass
class SklearnFit:
    """The fitted scikit-learn parts (kept for inspection and equivalence tests)."""

    gbdt: Any
    encoder: Any
    lr: Any
    feature_names: tuple[str, ...]
    fill_values: dict[str, float]
    meta: dict[str, Any]


def fit_gbdt_lr(
    x_full: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    params: TrainParams | None = None,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
) -> SklearnFit:
    """Fit GBDT+LR with scikit-learn on a raw :data:`FEATURES` matrix and binary labels."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    p = params or TrainParams()
    names = tuple(feature_names or FEATURES)
    bad = [n for n in names if n not in FEATURES]
    if bad:
        raise InvalidInput(f"unknown features: {bad}")
    y = np.asarray(y).astype(np.int64)
    if x_full.shape != (y.size, len(FEATURES)):
        raise InvalidInput(f"x must be (n, {len(FEATURES)}) with n = len(y)")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise InvalidInput("training needs both positive and negative examples")
    w = np.ones(y.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    fill = fit_fill_values(x_full[:, : len(VALUE_NAMES)])
    cols = [FEATURES.index(n) for n in names]
    x = impute(x_full, fill)[:, cols]

    masks = _split_groups(np.asarray(groups), p.lr_share, seed) if groups is not None else None
    if masks is not None and not all(len(np.unique(y[m])) == 2 for m in masks):
        masks = None
    tree_mask, lr_mask = masks if masks is not None else (np.ones(y.size, bool),) * 2

    gbdt = GradientBoostingClassifier(
        n_estimators=p.n_estimators,
        max_depth=p.max_depth,
        learning_rate=p.learning_rate,
        subsample=p.subsample,
        min_samples_leaf=p.min_samples_leaf,
        random_state=seed,
    )
    gbdt.fit(x[tree_mask], y[tree_mask], sample_weight=w[tree_mask])
    leaves = gbdt.apply(x[lr_mask])[:, :, 0].astype(np.int64)
    enc = OneHotEncoder(handle_unknown="ignore")
    onehot = enc.fit_transform(leaves)
    lr = LogisticRegression(C=p.lr_c, max_iter=2000)
    lr.fit(onehot, y[lr_mask], sample_weight=w[lr_mask])
    import sklearn

    meta = {
        "trained_with": f"scikit-learn {sklearn.__version__}",
        "params": dict(p.__dict__),
        "seed": seed,
        "n_examples": int(y.size),
        "n_positive": int(y.sum()),
        "n_tree_examples": int(tree_mask.sum()),
        "n_lr_examples": int(lr_mask.sum()),
    }
    return SklearnFit(gbdt, enc, lr, names, fill, meta)


def to_ltr_model(
    fit: SklearnFit, version: str = "dev", metadata: Mapping[str, Any] | None = None
) -> LtrModel:
    """The portable model: per tree, each leaf carries the LR weight of its one-hot column."""
    coef = fit.lr.coef_.ravel()
    trees: list[Tree] = []
    offset = 0
    for t, est in enumerate(fit.gbdt.estimators_[:, 0]):
        tr = est.tree_
        leaf_weight = np.zeros(tr.node_count, dtype=np.float64)
        cats = fit.encoder.categories_[t].astype(np.int64)
        leaf_weight[cats] = coef[offset : offset + cats.size]
        offset += cats.size
        trees.append(
            Tree(
                left=tr.children_left.astype(np.int64).copy(),
                right=tr.children_right.astype(np.int64).copy(),
                feature=tr.feature.astype(np.int64).copy(),
                threshold=tr.threshold.astype(np.float64).copy(),
                leaf_weight=leaf_weight,
            )
        )
    meta = {**fit.meta, **dict(metadata or {})}
    return LtrModel(
        fit.feature_names,
        dict(fit.fill_values),
        trees,
        float(fit.lr.intercept_[0]),
        version,
        metadata=meta,
    )


def train_model(
    x_full: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    params: TrainParams | None = None,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    version: str = "dev",
    metadata: Mapping[str, Any] | None = None,
) -> LtrModel:
    """Fit GBDT+LR on a raw :data:`FEATURES` matrix and binary labels (1 = clicked/relevant).

    ``groups`` (query ids) let the trees and the LR be fit on disjoint queries;
    ``feature_names`` restricts the model to a subset of :data:`FEATURES` (e.g. the ones the
    LTR plugin export can compute).
    """
    fit = fit_gbdt_lr(
        x_full,
        y,
        groups=groups,
        sample_weight=sample_weight,
        params=params,
        seed=seed,
        feature_names=feature_names,
    )
    return to_ltr_model(fit, version, metadata)
