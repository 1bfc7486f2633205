"""Retrieval knobs of the search service (:class:`SearchOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.queries import DEFAULT_FLOOR, IMAGE_FIELD, TEXT_FIELD
from engine.search.attribute_rerank import AttributeRerank


@dataclass(frozen=True)
class SearchOptions:
    """Retrieval knobs.

    Category fusion (alpha, vote_k, threshold) and query arithmetic (compose_k, text_weight,
    soft filter, category restriction) were chosen on the validation slice of the training
    items (``engine.train.joint.is_val_id``) of the 9.5k photographed catalog items, never on
    the test split; see the search section of the evaluation report for test numbers.
    """

    knn_k: int = 100  # neighbours searched by k-NN (sub-)queries
    # hits of each hybrid sub-query normalised and combined (OpenSearch's pagination_depth),
    # whatever the page size; None: only `size` deep. Chosen on 200 attribute queries from the
    # validation items (44k index, page of 10): nDCG@10 / p50 with the query vector cached:
    # page-deep 0.885 / 22.5 ms, 20: 0.895 / 25.6, 30: 0.902 / 30.0, 40: 0.906 / 32.6,
    # 60: 0.914 / 40.6, 100: 0.921 / 56.9 ms. Test queries: 0.864 (page-deep) -> 0.908 (60).
    hybrid_depth: int | None = 60
    fusion_depth: int | None = (
        None  # per-sub-query list depth for client fusion (None: hybrid_depth)
    )
    vote_k: int = 20  # nearest catalog images that vote on the query photo's category
    category_alpha: float = 0.5  # classifier weight in the category fusion
    category_threshold: float = 0.5  # restrict to the category at this fused probability
    coarse: bool = False  # Hamming coarse pass + exact re-rank by default
    coarse_k: int = 200  # coarse candidates re-ranked exactly
    compose_k: int = 200  # neighbours of the composed vector that the soft filter re-scores
    text_weight: float = 1.25  # w of f_text(wanted) in query arithmetic
    negative_weight: float = 0.5  # w_neg of f_text(unwanted)
    soft_floor: float = DEFAULT_FLOOR
    image_field: str = IMAGE_FIELD
    text_field: str = TEXT_FIELD
    compose_field: str = IMAGE_FIELD
    text_cache_size: int = 4096
    # query texts' backbone: "minilm" or "static" (engine.search.query_encoder.QueryEncoder)
    query_text_encoder: str = "static"
    pipeline_ttl_s: float = 5.0  # explain reads the installed weights at most this stale
    # photo / item queries: re-score the top neighbours by colour and type agreement
    # (engine.search.attribute_rerank); None turns it off
    attribute_rerank: AttributeRerank | None = AttributeRerank()
