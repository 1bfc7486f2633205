"""Complete the look: complementary items for a catalog item (by id) or a photo.

Two sources of candidates, merged per slot:

1. **Look-based** — looks (the looks index) that contain the query item, or an item similar to
   it in the same slot (nested k-NN on ``items.embedding``), contribute their other items.
   Evidence: the look id, the look item that matched and its cosine similarity.
2. **Learned** — the type-aware compatibility model (:mod:`engine.looks.compat`) turns the
   query vector into a partner prototype per target slot; a filtered k-NN search on the
   products' ``joint_embedding`` (slot + the request's filters) returns a candidate pool.

Every candidate is scored by the model in the (query slot, candidate slot) subspace; look
evidence adds ``look_weight * similarity``. Candidates are de-duplicated, filtered (gender,
price, stock, brand), diversified per slot with MMR over their vectors, and returned with a
reason. Without a trained model the service still answers from looks (reason: look only);
a slot with no candidate is an empty list, never an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backend import Backend
from engine.errors import InvalidInput, ModelUnavailable, NotFound
from engine.image_links import image_links
from engine.look_queries import (
    knn_products_query,
    looks_with_item_query,
    product_filters,
    similar_look_items_query,
)
from engine.looks.compat import CompatModel
from engine.looks.slots import (
    SLOTS,
    complementary_slots,
    look_slot,
    slot_for_fields,
    validate_slot,
)
from engine.looks.store import CANDIDATE_EXCLUDES, PRODUCT_EXCLUDES, item_vector, public_look

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
MAX_SIZE = 50

# The gender a query item implies for its complements when the request names none.
_DEFAULT_GENDERS: dict[str, list[str]] = {
    "men": ["Men", "Unisex"],
    "women": ["Women", "Unisex"],
    "boys": ["Boys", "Unisex"],
    "girls": ["Girls", "Unisex"],
}
_RESULT_FIELDS = (
    "title",
    "brand",
    "gender",
    "article_type",
    "base_colour",
    "usage",
    "price",
    "discounted_price",
    "in_stock",
)


@dataclass
class LookFilters:
    """Hard filters on the recommended items (``genders=None``: implied by the query item)."""

    genders: list[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    brands: list[str] | None = None

    def accepts(self, doc: Mapping[str, Any]) -> bool:
        if self.genders and str(doc.get("gender", "")).lower() not in {
            g.lower() for g in self.genders
        }:
            return False
        price = doc.get("price")
        if self.min_price is not None and (price is None or price < self.min_price):
            return False
        if self.max_price is not None and (price is None or price > self.max_price):
            return False
        if self.in_stock and doc.get("in_stock") is False:
            return False
        return not (
            self.brands
            and str(doc.get("brand", "")).lower() not in {b.lower() for b in self.brands}
        )

    def as_json(self) -> JSON:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class CompleteRequest:
    """One complete-the-look query: an item id or an image (a PIL image), never both."""

    item_id: str | None = None
    image: Any = None
    query_slot: str | None = None  # for photos: override the predicted slot
    slots: list[str] | None = None
    size: int = 5
    size_per_slot: dict[str, int] = field(default_factory=dict)
    filters: LookFilters = field(default_factory=LookFilters)


@dataclass
class _Query:
    vector: np.ndarray
    slot: str
    item_id: str | None
    info: JSON


@dataclass
class _Candidate:
    doc: JSON
    vector: np.ndarray
    look_sim: float | None = None
    look_id: str | None = None
    similar_item: str | None = None
    from_model: bool = False
    model_score: float | None = None
    score: float = 0.0


def _unit(v: Sequence[float]) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(arr))
    return arr / n if n > 0 else arr


def mmr(scores: Sequence[float], vectors: np.ndarray, k: int, lam: float = 0.8) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` items balancing score and novelty."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(scores, dtype=np.float64)
    vecs = np.asarray(vectors, dtype=np.float64)
    sims = vecs @ vecs.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    remaining = np.ones(n, dtype=bool)
    while len(chosen) < min(k, n):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = lam * rel - (1 - lam) * penalty
        value[~remaining] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        remaining[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


class LookService:
    """Complete-the-look over a products index and a looks index."""

    def __init__(
        self,
        backend: Backend,
        *,
        products_index: str,
        looks_index: str,
        model: CompatModel | None = None,
        joint_loader: Callable[[], Any] | None = None,
        model_loader: Callable[[], CompatModel | None] | None = None,
        pool_size: int = 100,
        look_k: int = 30,
        look_weight: float = 1.0,
        mmr_lambda: float = 0.8,
    ) -> None:
        self.backend = backend
        self.products_index = products_index
        self.looks_index = looks_index
        self._model = model
        self._model_loader = model_loader  # the compatibility model, loaded on first use
        self._model_lock = threading.Lock()
        self.joint_loader = joint_loader
        self.pool_size = pool_size
        self.look_k = look_k
        self.look_weight = look_weight
        self.mmr_lambda = mmr_lambda
        self._warned = False

    @property
    def model(self) -> CompatModel | None:
        """The compatibility model (None: looks-only answers); ``model_loader`` runs once."""
        if self._model_loader is not None:
            with self._model_lock:
                if self._model_loader is not None:
                    self._model = self._model_loader()
                    self._model_loader = None
        return self._model

    @model.setter
    def model(self, value: CompatModel | None) -> None:
        self._model, self._model_loader = value, None

    # ------------------------------------------------------------------ looks
    def get_look(self, look_id: str) -> JSON:
        """A stored look (no vectors), its items enriched with product fields when known."""
        try:
            doc = self.backend.get(self.looks_index, look_id, source_excludes=["items.embedding"])
        except NotFound:
            raise NotFound(f"no look {look_id!r}", look_id=look_id) from None
        look = public_look(doc)
        ids = [it["item_id"] for it in look["items"]]
        try:
            products = self.backend.mget(self.products_index, ids, source_excludes=PRODUCT_EXCLUDES)
        except NotFound:
            products = {}
        for it in look["items"]:
            p = products.get(it["item_id"])
            it["in_catalog"] = p is not None
            if p is not None:
                it.update({k: p[k] for k in ("title", "price") if k in p})
                links = image_links(it["item_id"], p)
                if links:
                    it["image_urls"] = links
        return look

    # ------------------------------------------------------------------ query
    def _resolve(self, req: CompleteRequest) -> _Query:
        if (req.item_id is None) == (req.image is None):
            raise InvalidInput("give exactly one of item_id or an image")
        if req.item_id is not None:
            try:
                doc = self.backend.get(
                    self.products_index, req.item_id, source_excludes=PRODUCT_EXCLUDES
                )
            except NotFound:
                raise NotFound(f"no product {req.item_id!r}", item_id=req.item_id) from None
            vec = item_vector(doc)
            if vec is None:
                raise InvalidInput(f"product {req.item_id!r} has no vector (re-ingest it)")
            self._check_version(doc.get("model_version"))
            slot = req.query_slot or look_slot(doc)
            if slot is None:
                raise InvalidInput(
                    f"product {req.item_id!r} ({doc.get('article_type')}) is not part of outfits",
                    item_id=req.item_id,
                    article_type=doc.get("article_type"),
                )
            info = {
                "item_id": req.item_id,
                "title": doc.get("title"),
                "article_type": doc.get("article_type"),
                "base_colour": doc.get("base_colour"),
                "gender": doc.get("gender"),
                "slot": slot,
            }
            return _Query(_unit(vec), slot, req.item_id, info)
        if self.joint_loader is None:
            raise ModelUnavailable("photo queries need the joint model")
        joint = self.joint_loader()
        pvec = _unit(joint.embed_images([req.image])[0])
        pinfo: JSON = {"image": True}
        slot = req.query_slot
        if slot is None:
            attrs = joint.predict_attributes(pvec[None, :], top_k=1)[0]

            def top(name: str) -> str | None:
                values = attrs.get(name) or {}
                return max(values, key=values.get) if values else None  # type: ignore[arg-type]

            predicted = {k: top(k) for k in ("article_type", "sub_category", "master_category")}
            pinfo["predicted"] = predicted
            slot = slot_for_fields(
                predicted["article_type"], predicted["sub_category"], predicted["master_category"]
            )
            gender_probs = attrs.get("gender") or {}
            if gender_probs:
                g, p = max(gender_probs.items(), key=lambda kv: kv[1])
                pinfo["predicted_gender"] = g
                pinfo["predicted_gender_probability"] = round(float(p), 4)
            if slot is None:
                slot = self._neighbour_slot(pvec)
        if slot is None:
            raise InvalidInput("cannot tell which outfit slot the photo shows; pass query_slot")
        pinfo["slot"] = slot
        return _Query(pvec, slot, None, pinfo)

    def _check_version(self, version: Any) -> None:
        expected = self.model.config.get("joint_model_version") if self.model else None
        if expected and version and version != expected and not self._warned:
            self._warned = True
            logger.warning(
                "product vectors come from joint model %s but the compatibility model was "
                "trained on %s: retrain it (python -m engine.train.looks)",
                version,
                expected,
            )

    def _neighbour_slot(self, vec: np.ndarray) -> str | None:
        body = knn_products_query(vec, 5, {"match_all": {}}, field="image_embedding")
        body["_source"] = ["slot", "article_type", "sub_category", "master_category"]
        try:
            hits = self.backend.search(self.products_index, body)["hits"]["hits"]
        except NotFound:
            return None
        slots = [look_slot(h["_source"]) for h in hits]
        slots = [s for s in slots if s]
        return max(set(slots), key=slots.count) if slots else None

    # ------------------------------------------------------------------ sources
    def _look_candidates(
        self, q: _Query, targets: set[str], genders: list[str] | None
    ) -> dict[str, tuple[float, str, str | None]]:
        """candidate id -> (similarity of the matched look item, look id, matched item)."""
        hits: list[tuple[float, JSON, str | None]] = []
        bodies = [similar_look_items_query(q.vector, q.slot, self.look_k, gender=genders)]
        if q.item_id is not None:
            bodies.append(looks_with_item_query(q.item_id, self.look_k))
        try:
            responses = self.backend.msearch(self.looks_index, bodies)
        except NotFound:
            return {}
        res = responses[0]
        if q.item_id is not None:
            hits.extend((1.0, h, q.item_id) for h in responses[1]["hits"]["hits"])
        for h in res["hits"]["hits"]:
            inner = h.get("inner_hits", {}).get("items", {}).get("hits", {}).get("hits", [])
            matched = inner[0]["_source"].get("item_id") if inner else None
            sim = 2.0 * float(h["_score"]) - 1.0  # Lucene cosine score = (1 + cos) / 2
            hits.append((sim, h, matched))
        out: dict[str, tuple[float, str, str | None]] = {}
        for sim, h, matched in hits:
            src = h["_source"]
            for it in src.get("items", []):
                iid, slot = it.get("item_id"), it.get("slot")
                if not iid or iid in (matched, q.item_id) or slot not in targets:
                    continue
                if iid not in out or out[iid][0] < sim:
                    out[iid] = (sim, str(src.get("look_id", h["_id"])), matched)
        return out

    def _model_candidates(
        self, q: _Query, slots: Sequence[str], filters: LookFilters
    ) -> dict[str, list[JSON]]:
        """Per target slot, the products nearest to the model's partner prototype (filtered
        k-NN), all slots in one ``_msearch`` round trip."""
        assert self.model is not None
        bodies = []
        for slot in slots:
            proto = self.model.prototype(q.vector, q.slot, slot)
            flt = product_filters(
                slot=slot,
                genders=filters.genders,
                min_price=filters.min_price,
                max_price=filters.max_price,
                in_stock=filters.in_stock,
                brands=filters.brands,
                exclude_ids=[q.item_id] if q.item_id else [],
                look_slots_only=True,
            )
            bodies.append(knn_products_query(proto, self.pool_size, flt))
        try:
            responses = self.backend.msearch(self.products_index, bodies)
        except NotFound:
            return {}
        return {
            slot: [h["_source"] | {"id": h["_id"]} for h in res["hits"]["hits"]]
            for slot, res in zip(slots, responses, strict=True)
        }

    # ------------------------------------------------------------------ main
    def complete(self, req: CompleteRequest) -> JSON:
        if not 1 <= req.size <= MAX_SIZE:
            raise InvalidInput(f"size must be between 1 and {MAX_SIZE}")
        q = self._resolve(req)
        if req.slots:
            try:
                targets = [validate_slot(s) for s in req.slots]
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
        else:
            targets = complementary_slots(q.slot)
        sizes = {}
        for s, n in req.size_per_slot.items():
            try:
                slot = validate_slot(s)
            except ValueError as exc:
                raise InvalidInput(f"size_per_slot: {exc}") from None
            if not 0 <= int(n) <= MAX_SIZE:
                raise InvalidInput(f"size_per_slot.{s} must be between 0 and {MAX_SIZE}")
            sizes[slot] = int(n)
        filters = LookFilters(**req.filters.__dict__)
        implied = False
        if filters.genders is None and q.info.get("gender"):
            filters.genders = _DEFAULT_GENDERS.get(str(q.info["gender"]).lower())
            implied = filters.genders is not None

        cands: dict[str, dict[str, _Candidate]] = {s: {} for s in targets}
        evidence = self._look_candidates(q, set(targets), filters.genders)
        if evidence:
            docs = self.backend.mget(
                self.products_index, sorted(evidence), source_excludes=CANDIDATE_EXCLUDES
            )
            for iid, doc in docs.items():
                doc_slot = look_slot(doc)
                vec = item_vector(doc)
                if doc_slot not in cands or vec is None or not filters.accepts(doc):
                    continue
                sim, look_id, matched = evidence[iid]
                cands[doc_slot][iid] = _Candidate(
                    doc | {"id": iid}, _unit(vec), sim, look_id, matched
                )
        if self.model is not None:
            pools = self._model_candidates(q, targets, filters)
            for slot in targets:
                for doc in pools.get(slot, []):
                    vec = item_vector(doc)
                    if vec is None:
                        continue
                    c = cands[slot].get(doc["id"])
                    if c is None:
                        cands[slot][doc["id"]] = _Candidate(doc, _unit(vec), from_model=True)
                    else:
                        c.from_model = True

        out: dict[str, list[JSON]] = {}
        for slot in targets:
            group = list(cands[slot].values())
            n = sizes.get(slot, req.size)
            if not group or n == 0:
                out[slot] = []
                continue
            vecs = np.stack([c.vector for c in group])
            if self.model is not None:
                ms = self.model.score(q.vector, q.slot, vecs, slot)
                for c, s in zip(group, ms, strict=True):
                    c.model_score = float(s)
            for c in group:
                look_part = (
                    self.look_weight * max(0.0, c.look_sim) if c.look_sim is not None else 0.0
                )
                if c.model_score is not None:
                    c.score = c.model_score + look_part
                else:
                    c.score = c.look_sim if c.look_sim is not None else 0.0
            picked = mmr([c.score for c in group], vecs, n, self.mmr_lambda)
            out[slot] = [self._result(group[i]) for i in picked]
        query = {
            **q.info,
            "slots": targets,
            "filters": filters.as_json(),
            "gender_implied_by_query": implied,
        }
        return {
            "query": query,
            "slots": out,
            "model": self.model is not None,
        }

    @staticmethod
    def _result(c: _Candidate) -> JSON:
        reason: JSON
        if c.look_id is not None:
            reason = {
                "source": "look+model" if c.model_score is not None else "look",
                "look_id": c.look_id,
                "similar_item": c.similar_item,
                "look_similarity": round(float(c.look_sim or 0.0), 4),
            }
        else:
            reason = {"source": "model"}
        if c.model_score is not None:
            reason["model_score"] = round(c.model_score, 4)
        item = {"id": c.doc["id"], "score": round(float(c.score), 4)}
        item.update({k: c.doc[k] for k in _RESULT_FIELDS if k in c.doc})
        links = image_links(str(c.doc["id"]), c.doc)
        if links:
            item["image_urls"] = links
        item["slot"] = look_slot(c.doc)
        item["reason"] = reason
        return item


__all__ = ["SLOTS", "CompleteRequest", "LookFilters", "LookService", "mmr"]
