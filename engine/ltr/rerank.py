"""Re-rank the top N candidates of a query: blend the original relevance with the LTR score.

For the search service::

    from engine.ltr.features import Candidate
    from engine.ltr.rerank import rerank

    cands = [Candidate.from_hit(h, {"text_sim": ..., "bm25": ...}) for h in hits]
    ranked = rerank(cands, blend=store.blend())  # store: engine.tuning.weights.TuningStore

Within the first ``blend.top_n`` candidates both scores are min-max normalised over those
candidates and combined as ``(1 - ltr_weight) * relevance + ltr_weight * ltr``; ties keep the
original order; candidates after the top N keep their order. ``ltr_weight=0`` (or
``enabled=False``) returns the original order without touching the model, so merchandisers can
dial quality in gradually while the results keep their look.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import InvalidInput
from engine.ltr.features import Candidate, to_float
from engine.ltr.model import LtrModel

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL_PATH = WEIGHTS_DIR / "gbdt_lr_default.json"
DEFAULT_LTR_WEIGHT = 0.5
DEFAULT_TOP_N = 60
MAX_TOP_N = 1000


@dataclass(frozen=True)
class RerankBlend:
    """How much the LTR score counts (0..1), how many candidates are re-ranked, on/off."""

    ltr_weight: float = DEFAULT_LTR_WEIGHT
    top_n: int = DEFAULT_TOP_N
    enabled: bool = True

    def __post_init__(self) -> None:
        w = self.ltr_weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise InvalidInput("ltr_weight must be a finite number", ltr_weight=str(w))
        if not 0.0 <= w <= 1.0:
            raise InvalidInput("ltr_weight must be in [0, 1]", ltr_weight=w)
        if isinstance(self.top_n, bool) or not isinstance(self.top_n, int):
            raise InvalidInput("top_n must be an integer", top_n=str(self.top_n))
        if not 1 <= self.top_n <= MAX_TOP_N:
            raise InvalidInput(f"top_n must be in [1, {MAX_TOP_N}]", top_n=self.top_n)

    def to_json(self) -> dict[str, float | int | bool]:
        return {"ltr_weight": self.ltr_weight, "top_n": self.top_n, "enabled": self.enabled}


@dataclass(frozen=True)
class Reranked:
    """One result after re-ranking. ``score``/``ltr_score`` are None outside the top N."""

    candidate: Candidate
    original_rank: int
    score: float | None
    ltr_score: float | None

    @property
    def doc_id(self) -> str:
        return self.candidate.doc_id


@lru_cache(maxsize=4)
def _load(path: str) -> LtrModel:
    return LtrModel.load(Path(path))


def load_model(path: Path | None = None) -> LtrModel:
    """The model at ``path`` (default: the shipped one), loaded once per process."""
    return _load(str(Path(path) if path is not None else DEFAULT_MODEL_PATH))


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the finite values; NaN -> 0; all equal -> all 0."""
    v = np.array(values, dtype=np.float64, copy=True)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros_like(v)
    lo, hi = v[finite].min(), v[finite].max()
    out = np.zeros_like(v)
    if hi > lo:
        out[finite] = (v[finite] - lo) / (hi - lo)
    return out


def blend_scores(relevance: np.ndarray, ltr: np.ndarray, ltr_weight: float) -> np.ndarray:
    return (1.0 - ltr_weight) * minmax(relevance) + ltr_weight * minmax(ltr)


def rerank(
    candidates: Sequence[Candidate],
    model: LtrModel | None = None,
    *,
    blend: RerankBlend | None = None,
    reference_time: float | None = None,
) -> list[Reranked]:
    """Candidates (given in their original order) re-ranked by the blended score.

    ``model``: default the shipped model. ``reference_time``: "now" for the recency feature
    (epoch seconds; default the current time).
    """
    b = blend or RerankBlend()
    if not b.enabled or b.ltr_weight == 0.0 or not candidates:
        return [Reranked(c, i, None, None) for i, c in enumerate(candidates)]
    m = model or load_model()
    now = time.time() if reference_time is None else reference_time
    head = list(candidates[: b.top_n])
    ltr = m.score_candidates(head, now)
    relevance = np.array([to_float(c.score) for c in head])
    final = blend_scores(relevance, ltr, b.ltr_weight)
    order = sorted(range(len(head)), key=lambda i: (-final[i], i))
    out = [Reranked(head[i], i, float(final[i]), float(ltr[i])) for i in order]
    out.extend(Reranked(c, len(head) + j, None, None) for j, c in enumerate(candidates[b.top_n :]))
    return out
