"""Search orchestration: encoders -> pure query builders -> :class:`engine.backend.Backend`.

:class:`SearchService` is the facade the API, evaluation and tests use; each query type runs in
its own module (:mod:`engine.search.text_search`, :mod:`engine.search.image_search`,
:mod:`engine.search.compose_search`) over the shared stages of :mod:`engine.search.stages` and
the query encoder of :mod:`engine.search.query_encoder`.

Three query types:

* **text** (:meth:`SearchService.text_search`): BM25 over the product text fields plus k-NN on
  ``text_embedding`` with the joint model's text vector, combined by the installed hybrid search
  pipeline (min-max normalisation, weighted arithmetic mean). A request may override the weights:
  the body then carries a *temporary* pipeline (``search_pipeline`` object in the request body,
  verified on OpenSearch 2.19.1). When the cluster rejects temporary pipelines the service fuses
  the two result lists itself (:mod:`engine.search.fusion`, same semantics) and says so in
  ``notes``.
* **image** (:meth:`SearchService.image_search`, :meth:`SearchService.similar_to_item`): the
  photo's joint embedding -> category prediction (classifier fused with a similarity-weighted
  kNN vote, :mod:`engine.search.category`) -> k-NN restricted to the predicted article type when
  confident -> optionally a Hamming coarse pass on ``binary_code`` with an exact cosine re-rank
  -> the top 60 re-scored by colour x type agreement with the query photo's predictions (or the
  query item's stored ``attr_prob``), :mod:`engine.search.attribute_rerank`.
* **compose** (:meth:`SearchService.compose_search`): ``normalize(f_image + w f_text(wanted) -
  w_neg f_text(unwanted))`` with a soft attribute filter (:mod:`engine.search.compose`).

Every path ends with the **quality re-rank** (:mod:`engine.search.quality`) when the service
has one (the API's does): the merchandiser's live LTR blend re-orders the top ``top_n`` hits;
``strategy`` then ends in ``+ltr``.

``explain=True`` adds a per-stage breakdown to every hit (BM25 and vector scores raw and
normalised, fused score, category, Hamming distance, soft-filter or attribute re-rank factor,
LTR score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engine.backend import Backend
from engine.bundle import CatalogFitCheck
from engine.result_fields import StoredResultsCheck
from engine.search.compose_search import ComposeSearch
from engine.search.image_search import ImageSearch
from engine.search.options import SearchOptions
from engine.search.quality import QualityRerank
from engine.search.query_encoder import QueryEncoder
from engine.search.stages import QualityStage, SearchContext
from engine.search.text_search import TextSearch
from engine.settings import ApiSettings, Settings


class SearchService:
    """Text, image and composed product search over one products index."""

    def __init__(
        self,
        backend: Backend,
        *,
        index: str,
        pipeline: str,
        model: Callable[[], Any] | Any,
        api: ApiSettings | None = None,
        options: SearchOptions | None = None,
        quality: QualityRerank | None = None,
        fit_check: CatalogFitCheck | None = None,
        encoder: QueryEncoder | None = None,
        shopper: Callable[[], Any] | None = None,
        stored_results: StoredResultsCheck | None = None,
    ) -> None:
        self.backend = backend
        self.quality = quality
        self.index = index
        self.pipeline = pipeline
        self.api = api or ApiSettings()
        self.options = options or SearchOptions()
        self._model_ref = model
        self.encoder = encoder or QueryEncoder(
            model,
            self.options.text_cache_size,
            text_encoder=self.options.query_text_encoder,
            shopper=shopper,
        )
        # Never serve a classifier that does not know the catalog: when the bundle's type
        # labels miss the index's, the category step is the k-NN vote over the index alone.
        self.fit_check = fit_check or CatalogFitCheck(
            lambda: backend.term_counts(index, "article_type"),
            lambda: list(self.model.attribute_vocab.get("article_type") or []),
        )
        # hits read as stored fields when the index's mapping stores them (engine.result_fields)
        self.stored_results = stored_results or StoredResultsCheck(
            lambda: backend.get_mapping(index)
        )
        ctx = SearchContext(
            backend,
            index,
            self.options,
            self.encoder,
            QualityStage(quality),
            stored=self.stored_results,
            stored_probabilities=self.stored_results.probabilities,
        )
        self._text = TextSearch(ctx, pipeline)
        self._image = ImageSearch(ctx, self.fit_check)
        self._compose = ComposeSearch(ctx, self._image)
        self._bind()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        backend: Backend,
        model: Callable[[], Any] | Any,
        *,
        index: str | None = None,
        options: SearchOptions | None = None,
        quality: QualityRerank | None = None,
        shopper: Callable[[], Any] | None = None,
    ) -> SearchService:
        """``options`` default: :class:`SearchOptions` with ``api.search_hybrid_depth``."""
        if options is None:
            depth = settings.api.search_hybrid_depth
            options = SearchOptions(
                hybrid_depth=depth or None,
                query_text_encoder=settings.models.query_text_encoder,
            )
        return cls(
            backend,
            index=index or settings.cluster.products_index,
            pipeline=settings.cluster.hybrid_pipeline,
            model=model,
            api=settings.api,
            options=options,
            quality=quality,
            shopper=shopper,
        )

    # The facade's methods are the stages' own (bound here, so signatures and docstrings live
    # in one place: engine.search.query_encoder, text_search, image_search, compose_search).
    def _bind(self) -> None:
        enc, text, image, compose = self.encoder, self._text, self._image, self._compose
        self.embed_text = enc.embed_text
        self.embed_image = enc.embed_image
        self.embed_image_attributes = enc.embed_image_attributes
        self.classifier_probs = enc.classifier_probs
        self.lexicon = enc.lexicon
        self.installed_weights = text.installed_weights
        self.text_search = text.search
        self.predict_category = image.predict_category
        self.image_search = image.image_search
        self.search_by_vector = image.search_by_vector
        self.item_vector = image.item_vector
        self.similar_to_item = image.similar_to_item
        self.compose_search = compose.search

    def variant(self, *, hybrid_depth: int | None, quality: QualityRerank | None) -> SearchService:
        """This service with another hybrid depth and quality re-rank (a merchandiser's
        candidate tuning, previewed beside the live one); encoder and fit check shared."""
        return SearchService(
            self.backend,
            index=self.index,
            pipeline=self.pipeline,
            model=self._model_ref,
            api=self.api,
            options=replace(self.options, hybrid_depth=hybrid_depth),
            quality=quality,
            fit_check=self.fit_check,
            encoder=self.encoder,
        )

    @property
    def model(self) -> Any:
        return self.encoder.model


__all__ = ["SearchOptions", "SearchService"]
