"""Golden-file tests of the pure query builders (engine/queries.py).

Every builder output is compared with ``tests/golden/<case>.json``; a test fails when a body
changes. After an intended change, regenerate (no environment variables needed) and review the
diff of tests/golden/ before committing:

    python -m tests.regen_golden
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import queries as q

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"

VEC = [0.5, -0.5, 0.5, -0.5]
CODE = np.array([0, 1, 127, 128, 255, 200], dtype=np.uint8)
ALL = q.Filters(
    gender=("Women", "Unisex"),
    article_type=("Dresses",),
    colour=("Red",),
    brand=("Nike", "Puma"),
    min_price=500,
    max_price=2500.5,
    in_stock=True,
    exclude_ids=("42",),
)
SOFT = q.SoftFilter(
    wanted=("attr_prob.base_colour.black",),
    unwanted=("attr_prob.pattern.striped",),
)

CASES: dict[str, Callable[[], Any]] = {
    "filters_none": lambda: q.filter_query(q.Filters()),
    "filters_all": lambda: q.filter_query(ALL),
    "bm25": lambda: q.bm25_search_body("red dresses", size=10),
    "bm25_filtered": lambda: q.bm25_search_body("red dresses", ALL, size=10),
    "vector_text": lambda: q.vector_search_body("text_embedding", VEC, k=50, size=10),
    "vector_filtered": lambda: q.vector_search_body("image_embedding", VEC, ALL, k=5, size=10),
    "hybrid": lambda: q.hybrid_search_body("red dresses", VEC, ALL, k=100, size=20),
    "hybrid_request_weights": lambda: q.hybrid_search_body(
        "red dresses", VEC, size=20, pipeline=q.hybrid_pipeline_body((1, 3))
    ),
    "hybrid_pipeline": lambda: q.hybrid_pipeline_body((0.4, 0.6)),
    "bm25_scores": lambda: q.bm25_scores_body("red dress", ["1", "2"], q.Filters(gender=("Men",))),
    "category_vote": lambda: q.category_vote_body(VEC, q.Filters(exclude_ids=("7",)), k=20),
    "image_category": lambda: q.image_search_body(
        VEC, q.Filters(gender=("Men",)), category="Shirts", k=100, size=10
    ),
    "image_coarse": lambda: q.coarse_image_search_body(
        CODE, VEC, q.Filters(in_stock=True), category="Shirts", coarse_k=200, size=10
    ),
    "compose_soft": lambda: q.compose_search_body(VEC, SOFT, ALL, k=100, size=10),
    "compose_plain": lambda: q.compose_search_body(VEC, q.SoftFilter(), k=100, size=10),
    "explain_source": lambda: q.vector_search_body(
        "image_embedding", VEC, size=3, source=q.Source(extra=("attr_prob", "binary_code"))
    ),
    "hybrid_stored": lambda: q.hybrid_search_body(
        "red dresses", VEC, size=10, k=60, source=q.Source(stored=True), pagination_depth=60
    ),
    "template_params": lambda: q.template_params(
        q.Filters(gender=("Women",), max_price=999, in_stock=True, exclude_ids=("9",)), size=5
    ),
}


def render(case: str) -> str:
    return json.dumps(CASES[case](), indent=2, sort_keys=True) + "\n"


def golden_path(case: str) -> Path:
    return GOLDEN_DIR / f"{case}.json"


@pytest.mark.parametrize("case", sorted(CASES))
def test_builder_matches_golden(case: str) -> None:
    path = golden_path(case)
    assert path.is_file(), f"missing {path}: run `python -m tests.regen_golden`"
    assert render(case) == path.read_text(), (
        f"{case}: the body changed; if intended run `python -m tests.regen_golden` and review"
    )


def test_no_stale_golden_files() -> None:
    stale = {p.stem for p in GOLDEN_DIR.glob("*.json")} - set(CASES)
    assert not stale, f"golden files without a case: {sorted(stale)}"


def test_signed_bytes_round_trip() -> None:
    assert q.signed_bytes(CODE) == [0, 1, 127, -128, -1, -56]
    assert q.signed_bytes([-5, 3]) == [-5, 3]
    with pytest.raises(ValueError):
        q.signed_bytes([256])


def test_scores_to_similarities() -> None:
    assert q.cosine_from_score(0.75) == pytest.approx(0.5)
    assert q.cosine_from_score(0.0) == pytest.approx(-1.0)
    assert q.hamming_from_score(1 / 9) == pytest.approx(8.0)


def test_filters_helpers() -> None:
    f = q.Filters(exclude_ids=("1",)).excluding(["2", "1"]).with_article_type("Shoes")
    assert f.exclude_ids == ("1", "2")
    assert f.article_type == ("Shoes",)
    assert q.Filters().empty and not f.empty


def test_pipeline_weights() -> None:
    assert q.pipeline_weights(q.hybrid_pipeline_body((1, 1))) == (0.5, 0.5)
    assert q.pipeline_weights(q.hybrid_pipeline_body((2, 6))) == (0.25, 0.75)
    assert q.pipeline_weights({"phase_results_processors": []}) is None
    assert q.pipeline_weights(None) is None
    with pytest.raises(ValueError):
        q.hybrid_pipeline_body((0, 0))
    with pytest.raises(ValueError):
        q.hybrid_pipeline_body((1, -1))


def test_template_params_reject_what_templates_cannot_express() -> None:
    with pytest.raises(ValueError):
        q.template_params(q.Filters(gender=("Men", "Women")))
    with pytest.raises(ValueError):
        q.template_params(q.Filters(exclude_ids=("1", "2")))


def test_knn_k_never_below_size() -> None:
    body = q.vector_search_body("image_embedding", VEC, k=5, size=30)
    assert body["query"]["knn"]["image_embedding"]["k"] == 30


def test_hybrid_pagination_depth_is_at_least_the_page() -> None:
    from engine.queries import hybrid_search_body

    vec = [0.1] * 4
    assert "pagination_depth" not in hybrid_search_body("red shirt", vec)["query"]["hybrid"]
    body = hybrid_search_body("red shirt", vec, size=10, pagination_depth=60)
    assert body["query"]["hybrid"]["pagination_depth"] == 60 and body["size"] == 10
    deep = hybrid_search_body("red shirt", vec, size=80, pagination_depth=60)
    assert deep["query"]["hybrid"]["pagination_depth"] == 80
