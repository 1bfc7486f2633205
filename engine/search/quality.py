"""The quality re-rank stage of the search service: the merchandiser's live LTR blend.

The last stage of every search path (text, photo, more-like-this, compose): the top
``blend.top_n`` retrieved hits are re-ordered by :func:`engine.ltr.rerank.rerank` with the blend
that is live in the tuning store (``PUT /admin/weights`` with a ``rerank`` part, cached a few seconds), so a change of
``ltr_weight``, ``top_n`` or ``enabled`` takes effect on the next query without a restart.
A disabled blend or ``ltr_weight = 0`` leaves the retrieval order untouched (and the stage
fetches no extra candidates). Hits keep their retrieval ``_score``; the re-rank's own numbers
travel as ``_ltr_score`` (the model's score) for the explain breakdown.

If the model cannot be loaded or scored, the stage logs a warning and returns the retrieval
order: a broken re-ranker must not break search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.ltr.features import Candidate
from engine.ltr.model import LtrModel
from engine.ltr.rerank import RerankBlend, load_model, rerank

logger = logging.getLogger(__name__)

# Document fields the LTR features read (engine.ltr.features.doc_values), fetched with the hits
# whenever the stage runs.
LTR_DOC_FIELDS: tuple[str, ...] = (
    "predicted_category_confidence",
    "price",
    "discounted_price",
    "rating",
    "added_at",
    "sales",
    "clicks",
    "in_stock",
)

Signals = Callable[[Mapping[str, Any]], Mapping[str, float | None]]


@dataclass
class QualityRerank:
    """``blend``: returns the live blend (e.g. ``TuningStore.blend``); ``model_path``: the LTR
    model (None: the shipped one, loaded once per process)."""

    blend: Callable[[], RerankBlend]
    model_path: Path | None = None

    def live(self) -> RerankBlend | None:
        """The live blend when it re-ranks anything (enabled, weight > 0), else None. (The
        tuning store already answers cluster errors with the last known blend.)"""
        b = self.blend()
        return b if b.enabled and b.ltr_weight > 0.0 else None

    def model(self) -> LtrModel:
        return load_model(self.model_path)

    def apply(
        self,
        hits: list[dict[str, Any]],
        blend: RerankBlend,
        signals: Signals | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Hits (OpenSearch hit dicts, best first) re-ordered by the blend; the bool says
        whether the re-rank ran (False: the model failed, the order is unchanged)."""
        if not hits:
            return hits, False
        cands = [Candidate.from_hit(h, signals(h) if signals else None) for h in hits]
        try:
            ranked = rerank(cands, self.model(), blend=blend)
        except (EngineError, OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("quality re-rank failed (%s); keeping the retrieval order", exc)
            return hits, False
        by_id = {str(h["_id"]): h for h in hits}
        out = []
        for r in ranked:
            h = dict(by_id[r.candidate.doc_id])
            if r.ltr_score is not None:
                h["_ltr_score"] = r.ltr_score
            out.append(h)
        return out, True


__all__ = ["LTR_DOC_FIELDS", "QualityRerank"]
