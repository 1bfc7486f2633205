"""Query-image category prediction: classifier probabilities fused with a kNN vote.

As in Alibaba's Pailitao (Zhang et al., KDD 2018), the category of a query photo is predicted by
combining a model-based classifier (here the joint model's attribute head, ``article_type``)
with a search-based vote: the article types of the nearest catalog images, each weighted by its
similarity to the query. The fused distribution is

    P(c) = alpha * P_classifier(c) + (1 - alpha) * vote(c) / sum(vote)

and retrieval is restricted to the top category when its fused probability reaches a
threshold (otherwise the search runs unrestricted). Labels compare case-insensitively; the
catalog's spelling is kept for display.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CategoryPrediction:
    """The predicted article type and how it was reached."""

    label: str | None
    confidence: float
    restrict: bool
    fused: dict[str, float] = field(default_factory=dict)
    classifier: dict[str, float] = field(default_factory=dict)
    vote: dict[str, float] = field(default_factory=dict)

    @property
    def classifier_label(self) -> str | None:
        """The classifier's own top-1 (the classifier-only baseline)."""
        return _argmax(self.classifier)

    @property
    def vote_label(self) -> str | None:
        return _argmax(self.vote)


def _argmax(scores: Mapping[str, float]) -> str | None:
    if not scores:
        return None
    return min(scores.items(), key=lambda kv: (-kv[1], kv[0].lower()))[0]


def _key(label: str) -> str:
    return " ".join(label.lower().split())


def knn_vote(neighbours: Iterable[tuple[str | None, float]]) -> dict[str, float]:
    """Similarity-weighted vote shares (sum 1) from (article_type, cosine similarity) pairs.

    Negative similarities and neighbours without a label do not vote. Empty when nobody votes.
    """
    votes: dict[str, float] = {}
    display: dict[str, str] = {}
    for label, sim in neighbours:
        if not label or sim <= 0:
            continue
        k = _key(label)
        display.setdefault(k, label)
        votes[k] = votes.get(k, 0.0) + float(sim)
    total = sum(votes.values())
    if total <= 0:
        return {}
    return {display[k]: v / total for k, v in votes.items()}


def fuse_category(
    classifier: Mapping[str, float], vote: Mapping[str, float], alpha: float
) -> dict[str, float]:
    """``alpha * classifier + (1 - alpha) * vote`` over the union of labels.

    When one side is empty the other is used alone (its weight becomes 1).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha must be in [0, 1]")
    if not vote:
        alpha = 1.0
    elif not classifier:
        alpha = 0.0
    display: dict[str, str] = {}
    fused: dict[str, float] = {}
    # Catalog spelling (vote) first, then the classifier's vocabulary spelling.
    for src, w in ((vote, 1.0 - alpha), (classifier, alpha)):
        for label, p in src.items():
            k = _key(label)
            display.setdefault(k, label)
            fused[k] = fused.get(k, 0.0) + w * float(p)
    return {display[k]: v for k, v in fused.items()}


def predict_category(
    classifier: Mapping[str, float],
    neighbours: Iterable[tuple[str | None, float]],
    *,
    alpha: float = 0.5,
    threshold: float = 0.5,
    top: int = 5,
) -> CategoryPrediction:
    """Fuse the classifier distribution with the neighbours' vote; restrict when confident.

    ``classifier``: article type -> probability (the full distribution or its top few);
    ``neighbours``: (article type, cosine similarity) of the nearest catalog images.
    """
    vote = knn_vote(neighbours)
    fused = fuse_category(classifier, vote, alpha)
    label = _argmax(fused)
    confidence = float(fused[label]) if label is not None else 0.0
    return CategoryPrediction(
        label=label,
        confidence=confidence,
        restrict=label is not None and confidence >= threshold,
        fused=_top(fused, top),
        classifier=_top(classifier, top),
        vote=_top(vote, top),
    )


def _top(scores: Mapping[str, float], n: int) -> dict[str, float]:
    items = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0].lower()))[:n]
    return {k: round(float(v), 6) for k, v in items}
