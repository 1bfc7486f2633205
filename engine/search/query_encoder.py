"""The query side of the joint model for search: text vectors (LRU-cached), photo vectors and
attribute distributions, the category classifier and the attribute lexicon."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from PIL import Image

from engine.search.attribute_rerank import RERANK_ATTRIBUTES, AttrDist, query_distribution
from engine.search.compose import AttributeLexicon


class QueryEncoder:
    """``model``: the joint model, or a callable returning it (resolved on every use, so a
    reloaded model is picked up). ``text_encoder``: the backbone of query texts, ``"minilm"``
    (the model's own) or ``"static"`` (:mod:`engine.models.static_text`, the documents' encoder:
    a fraction of a millisecond instead of MiniLM's several; built on first use over the
    model's MiniLM, ``static_weights`` default: the shipped ones)."""

    def __init__(
        self,
        model: Callable[[], Any] | Any,
        text_cache_size: int = 4096,
        *,
        text_encoder: str = "static",
        static_weights: Path | None = None,
        shopper: Callable[[], Any] | None = None,
    ) -> None:
        if text_encoder not in ("minilm", "static"):
            raise ValueError(f"unknown query text encoder {text_encoder!r}")
        self.text_encoder = text_encoder
        self._static_weights = static_weights
        self._static: tuple[int, Any] | None = None
        # the shopper-photo model (engine.models.shopper), or None: photos as studio shots
        self._shopper_fn = shopper or (lambda: None)
        if hasattr(model, "embed_texts"):
            self._model_fn: Callable[[], Any] = lambda: model
        else:
            self._model_fn = model
        self._text_cache: LRUCache[str, np.ndarray] | None = (
            LRUCache(maxsize=text_cache_size) if text_cache_size > 0 else None
        )
        self._lock = threading.Lock()
        self._lexicon: AttributeLexicon | None = None
        self._lexicon_model: int | None = None

    @property
    def model(self) -> Any:
        return self._model_fn()

    def embed_text(self, text: str) -> np.ndarray:
        """The joint text vector of a query (LRU-cached: popular queries repeat)."""
        key = " ".join(text.lower().split())
        cache = self._text_cache
        if cache is not None:
            with self._lock:
                hit = cache.get(key)
            if hit is not None:
                return hit
        vec = self._embed_uncached(text)
        if cache is not None:
            with self._lock:
                cache[key] = vec
        return vec

    def _embed_uncached(self, text: str) -> np.ndarray:
        model = self.model
        if self.text_encoder == "static" and hasattr(model, "embed_text_features"):
            feats = self._static_encoder(model).encode([text])
            return np.asarray(model.embed_text_features(feats)[0], dtype=np.float32)
        return np.asarray(model.embed_texts([text])[0], dtype=np.float32)

    def _static_encoder(self, model: Any) -> Any:
        from engine.models.static_text import StaticTextEncoder

        with self._lock:
            if self._static is None or self._static[0] != id(model):
                enc = StaticTextEncoder.load(model.text_encoder, self._static_weights)
                self._static = (id(model), enc)
            return self._static[1]

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return np.asarray(self.model.embed_images([image])[0], dtype=np.float32)

    def embed_image_attributes(self, image: Image.Image) -> tuple[np.ndarray, AttrDist | None]:
        """The photo's joint vector and its predicted colour and type distributions (None
        with a model that predicts no attributes from photos, e.g. a plugged-in CLIP)."""
        vec, dist, _ = self.embed_photo(image)
        return vec, dist

    def embed_photo(self, image: Image.Image) -> tuple[np.ndarray, AttrDist | None, Any]:
        """:meth:`embed_image_attributes` plus where the object was found
        (:class:`engine.models.shopper.Located`, None without a shopper-photo model): with one,
        the vector fuses the located object's and the whole photo's embeddings, the
        attributes are read from the object and ``located.types`` (when set) is what the
        category step reads instead of :meth:`classifier_probs` of the vector."""
        model = self.model
        if not hasattr(model, "image_attribute_probabilities"):
            return self.embed_image(image), None, None
        shopper = self._shopper_fn() if hasattr(model, "image_encoder") else None
        located = None
        if shopper is not None and shopper.fits(model):
            located = shopper.locate([image], model.image_encoder)[0]
            emb, feats, (located,) = shopper.encode(model, [located])
        else:
            feats = model.image_features([image])
            emb = model.embed_image_features(feats)
        vec = np.asarray(emb[0], dtype=np.float32)
        probs = model.image_attribute_probabilities(feats, emb)
        dist = {
            name: {
                str(v): float(p)
                for v, p in zip(model.attribute_vocab[name], probs[name][0], strict=True)
            }
            for name in RERANK_ATTRIBUTES
            if name in probs
        }
        keep = RERANK_ATTRIBUTES
        if located is not None and shopper is not None:
            keep = shopper.rerank_attributes(located) or RERANK_ATTRIBUTES
        return vec, query_distribution(dist, keep), located

    def classifier_probs(self, vector: np.ndarray) -> dict[str, float]:
        """The attribute head's article-type distribution for a joint embedding."""
        model = self.model
        probs = model.attribute_probabilities(np.asarray(vector, np.float32)[None, :])
        p = probs.get("article_type")
        if p is None:
            return {}
        vocab = model.attribute_vocab["article_type"]
        return {str(vocab[j]): float(p[0, j]) for j in range(len(vocab))}

    def codes(self, vec: np.ndarray) -> np.ndarray:
        """The binary code of a joint vector (the Hamming coarse pass)."""
        return np.asarray(self.model.codes(np.asarray(vec, np.float32)[None, :])[0], np.uint8)

    def lexicon(self) -> AttributeLexicon:
        model = self.model
        if self._lexicon is None or self._lexicon_model != id(model):
            self._lexicon = AttributeLexicon(model.attribute_vocab)
            self._lexicon_model = id(model)
        return self._lexicon
