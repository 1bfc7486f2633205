"""GBDT + LR click model: boosted trees' leaf indices, one-hot encoded, feed a logistic regression.

Training (:mod:`engine.train.ltr_model`) uses scikit-learn (``GradientBoostingClassifier``
then ``LogisticRegression`` on the one-hot leaves, fit on disjoint query groups as in He et al.
2014). Because a logistic regression over one-hot leaves is additive per tree, the fitted model is exactly "per tree, the
LR weight of the leaf the item falls into; sum; add the intercept; sigmoid". That is what we
save (portable JSON, no pickle: loading never runs code and does not depend on the scikit-learn
version) and what :meth:`LtrModel.predict` evaluates with numpy.

Files: ``<name>.json`` (trees, weights, feature list, fill values, versions) and the sidecar
``<name>.meta.json`` (training metadata: data source, seed, metrics, library versions).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InvalidInput, ModelUnavailable
from engine.ltr.features import (
    FEATURE_SET_VERSION,
    FEATURES,
    Candidate,
    extract_features,
    impute,
)

logger = logging.getLogger(__name__)

MODEL_FORMAT = "outfit-gbdt-lr/1"


@dataclass(frozen=True)
class Tree:
    """One regression tree: go left when ``x[feature] <= threshold``; ``leaf_weight`` at leaves."""

    left: np.ndarray  # int, -1 at leaves
    right: np.ndarray
    feature: np.ndarray  # int, index into the model's feature list (-2 at leaves)
    threshold: np.ndarray  # float64
    leaf_weight: np.ndarray  # float64; the LR coefficient of the leaf (0 for internal nodes)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Leaf node index of every row of ``x`` (float32 comparisons, as scikit-learn does)."""
        xf = x.astype(np.float32).astype(np.float64)
        node = np.zeros(x.shape[0], dtype=np.int64)
        rows = np.arange(x.shape[0])
        while True:
            internal = self.left[node] != -1
            if not internal.any():
                return node
            f = np.where(internal, self.feature[node], 0)
            go_left = xf[rows, f] <= self.threshold[node]
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(internal, nxt, node)

    def to_json(self) -> dict[str, Any]:
        return {
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "feature": self.feature.tolist(),
            "threshold": [float(t) for t in self.threshold],
            "leaf_weight": [float(w) for w in self.leaf_weight],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], n_features: int) -> Tree:
        left = np.asarray(data["left"], dtype=np.int64)
        right = np.asarray(data["right"], dtype=np.int64)
        feature = np.asarray(data["feature"], dtype=np.int64)
        threshold = np.asarray(data["threshold"], dtype=np.float64)
        leaf_weight = np.asarray(data["leaf_weight"], dtype=np.float64)
        n = left.size
        if not (right.size == feature.size == threshold.size == leaf_weight.size == n) or n == 0:
            raise ValueError("tree arrays differ in length")
        internal = left != -1
        if internal.any():
            kids = np.concatenate([left[internal], right[internal]])
            if kids.min() <= 0 or kids.max() >= n:
                raise ValueError("child index out of range")
            feats = feature[internal]
            if feats.min() < 0 or feats.max() >= n_features:
                raise ValueError("feature index out of range")
        if not np.isfinite(leaf_weight).all() or not np.isfinite(threshold[internal]).all():
            raise ValueError("non-finite weight or threshold")
        return cls(left, right, feature, threshold, leaf_weight)


@dataclass
class LtrModel:
    """A trained GBDT+LR model over (a subset of) :data:`FEATURES`, scoring in [0, 1]."""

    feature_names: tuple[str, ...]
    fill_values: dict[str, float]
    trees: list[Tree]
    intercept: float
    version: str
    feature_set_version: str = FEATURE_SET_VERSION
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [n for n in self.feature_names if n not in FEATURES]
        if unknown:
            raise ModelUnavailable(
                f"LTR model {self.version} uses features this code does not know: {unknown}",
                feature_set_version=self.feature_set_version,
            )
        self._columns = np.array([FEATURES.index(n) for n in self.feature_names], dtype=np.int64)
        self._packed = _pack(self.trees)

    # ------------------------------------------------------------------ scoring
    def decision_function(self, x_full: np.ndarray) -> np.ndarray:
        """Logit per row of a raw :data:`FEATURES` matrix (NaNs allowed: imputed here)."""
        if x_full.ndim != 2 or x_full.shape[1] != len(FEATURES):
            raise InvalidInput(f"expected a (n, {len(FEATURES)}) feature matrix")
        x = impute(x_full, self.fill_values)[:, self._columns]
        logit = np.full(x.shape[0], self.intercept, dtype=np.float64)
        if self.trees:
            logit += self._packed.leaf_weights(x).sum(axis=1)
        return logit

    def predict(self, x_full: np.ndarray) -> np.ndarray:
        """Click probability in [0, 1] per row of a raw :data:`FEATURES` matrix."""
        z = self.decision_function(x_full)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def score_candidates(
        self, candidates: Sequence[Candidate], reference_time: float
    ) -> np.ndarray:
        return self.predict(extract_features(candidates, reference_time))

    def used_features(self) -> list[str]:
        """Features some split tests (the others cannot change the score)."""
        used: set[int] = set()
        for t in self.trees:
            used.update(int(f) for f in t.feature[t.left != -1])
        return [self.feature_names[i] for i in sorted(used)]

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "feature_set_version": self.feature_set_version,
            "features": list(self.feature_names),
            "fill_values": {k: float(v) for k, v in self.fill_values.items()},
            "intercept": float(self.intercept),
            "trees": [t.to_json() for t in self.trees],
        }

    def save(self, path: Path) -> tuple[Path, Path]:
        """Write ``<path>`` (``.json``) and its sidecar ``<stem>.meta.json``; returns both."""
        path = Path(path)
        if path.suffix != ".json":
            path = path.with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta_path = sidecar_path(path)
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")
        meta = {
            "version": self.version,
            "feature_set_version": self.feature_set_version,
            "features": list(self.feature_names),
            "used_features": self.used_features(),
            "n_trees": len(self.trees),
            **self.metadata,
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path, meta_path

    @classmethod
    def from_json(cls, data: Mapping[str, Any], metadata: dict[str, Any] | None = None) -> LtrModel:
        if data.get("format") != MODEL_FORMAT:
            raise ModelUnavailable(f"not an LTR model file (format {data.get('format')!r})")
        names = tuple(str(n) for n in data["features"])
        try:
            trees = [Tree.from_json(t, len(names)) for t in data["trees"]]
            intercept = float(data["intercept"])
            fill = {str(k): float(v) for k, v in dict(data.get("fill_values", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailable(f"corrupt LTR model: {exc}") from exc
        if not math.isfinite(intercept):
            raise ModelUnavailable("corrupt LTR model: non-finite intercept")
        return cls(
            feature_names=names,
            fill_values=fill,
            trees=trees,
            intercept=intercept,
            version=str(data.get("version", "unknown")),
            feature_set_version=str(data.get("feature_set_version", "unknown")),
            metadata=metadata or {},
        )

    @classmethod
    def load(cls, path: Path) -> LtrModel:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"LTR model not found: {path}") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelUnavailable(f"cannot read LTR model {path}: {exc}") from exc
        meta_file = sidecar_path(path)
        meta: dict[str, Any] = {}
        if meta_file.exists():
            try:
                meta = dict(json.loads(meta_file.read_text()))
            except (OSError, json.JSONDecodeError, TypeError, ValueError):
                logger.warning("ignoring unreadable LTR sidecar %s", meta_file)
        return cls.from_json(data, meta)


@dataclass(frozen=True)
class _Packed:
    """All trees in padded (n_trees, max_nodes) arrays, walked together (fast for few rows)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_weight: np.ndarray

    def leaf_weights(self, x: np.ndarray) -> np.ndarray:
        """(n_rows, n_trees) LR weight of the leaf each row reaches in each tree."""
        xf = x.astype(np.float32).astype(np.float64)
        n_trees = self.left.shape[0]
        tree_idx = np.broadcast_to(np.arange(n_trees), (x.shape[0], n_trees))
        rows = np.arange(x.shape[0])[:, None]
        node = np.zeros((x.shape[0], n_trees), dtype=np.int64)
        while True:
            left = self.left[tree_idx, node]
            internal = left != -1
            if not internal.any():
                return self.leaf_weight[tree_idx, node]
            f = np.where(internal, self.feature[tree_idx, node], 0)
            go_left = xf[rows, f] <= self.threshold[tree_idx, node]
            nxt = np.where(go_left, left, self.right[tree_idx, node])
            node = np.where(internal, nxt, node)


def _pack(trees: Sequence[Tree]) -> _Packed:
    width = max((t.left.size for t in trees), default=1)
    n = len(trees)
    left = np.full((n, width), -1, dtype=np.int64)
    right = np.full((n, width), -1, dtype=np.int64)
    feature = np.zeros((n, width), dtype=np.int64)
    threshold = np.zeros((n, width), dtype=np.float64)
    leaf_weight = np.zeros((n, width), dtype=np.float64)
    for i, t in enumerate(trees):
        k = t.left.size
        left[i, :k], right[i, :k] = t.left, t.right
        feature[i, :k] = np.where(t.left != -1, t.feature, 0)
        threshold[i, :k], leaf_weight[i, :k] = t.threshold, t.leaf_weight
    return _Packed(left, right, feature, threshold, leaf_weight)


def sidecar_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).stem + ".meta.json")
