"""Test doubles for the search service: a recording backend and a tiny deterministic model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from engine.errors import NotFound

DIM = 8
VOCAB = {
    "article_type": ["Shirts", "Tshirts", "Dresses", "Casual Shoes"],
    "base_colour": ["Black", "Red", "Blue", "White"],
    "pattern": ["Solid", "Striped"],
    "sleeve_length": ["Sleeveless", "Short Sleeves"],
}


def unit(seed: str, dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha1(seed.encode()).hexdigest()[:8], 16))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeModel:
    """Deterministic vectors; a fixed article-type distribution; counts text encodes."""

    dim = DIM
    attribute_vocab = VOCAB

    def __init__(self, article_probs: Sequence[float] = (0.7, 0.2, 0.05, 0.05)) -> None:
        self.article_probs = np.asarray(article_probs, dtype=np.float32)
        self.text_calls = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        return np.stack([unit("t:" + t) for t in texts])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([unit(f"i:{img.size}:{img.getpixel((0, 0))}") for img in images])

    def attribute_probabilities(self, emb: np.ndarray) -> dict[str, np.ndarray]:
        n = emb.shape[0]
        return {"article_type": np.tile(self.article_probs, (n, 1))}

    def codes(self, emb: np.ndarray) -> np.ndarray:
        return np.packbits(emb > 0, axis=1)


def hit(doc_id: str, score: float, **source: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_score": score, "_source": {"id": doc_id, **source}}


def response(*hits: dict[str, Any]) -> dict[str, Any]:
    return {"hits": {"hits": list(hits)}}


class FakeBackend:
    """Records every call; answers with the responder functions a test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self.on_search: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = (
            lambda body, kw: response()
        )
        self.on_msearch: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda bodies: [
            response() for _ in bodies
        ]
        self.docs: dict[str, dict[str, Any]] = {}
        self.pipeline: dict[str, Any] | None = {
            "phase_results_processors": [
                {
                    "normalization-processor": {
                        "normalization": {"technique": "min_max"},
                        "combination": {
                            "technique": "arithmetic_mean",
                            "parameters": {"weights": [0.3, 0.7]},
                        },
                    }
                }
            ]
        }

    def search(self, index: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        if "kind" in (body.get("query") or {}).get("term", {}):
            # the tuning store reading its versions: this cluster was never tuned
            self.calls.append(("tuning_search", body, kw))
            return response()
        self.calls.append(("search", body, kw))
        return self.on_search(body, kw)

    def msearch(self, index: str, bodies: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
        self.calls.append(("msearch", bodies, kw))
        return self.on_msearch(bodies)

    def get_source(self, index: str, doc_id: str, includes: list[str]) -> dict[str, Any]:
        self.calls.append(("get_source", doc_id, {"includes": includes}))
        if doc_id not in self.docs:
            raise NotFound(f"get {index}/{doc_id}: not found")
        return {k: v for k, v in self.docs[doc_id].items() if k in includes}

    def get_search_pipeline(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_search_pipeline", name, {}))
        return self.pipeline

    def searches(self) -> list[dict[str, Any]]:
        return [c[1] for c in self.calls if c[0] == "search"]
