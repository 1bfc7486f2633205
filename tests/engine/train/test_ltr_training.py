"""SIMULATED clicks, the JSONL formats, and nDCG gains from training on them (issue 8)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import Product, load_catalog
from engine.errors import InvalidInput
from engine.ltr.features import FEATURES, doc_from_product
from engine.ltr.rerank import RerankBlend, load_model
from engine.train import ltr_data
from engine.train.datagen import clicks as sim
from engine.train.ltr_model import TrainParams, train_model
from evaluation import metrics

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "catalog.jsonl"


@lru_cache(maxsize=1)
def products() -> tuple[Product, ...]:
    return tuple(load_catalog(SAMPLE))


@lru_cache(maxsize=1)
def sample_lists() -> tuple[sim.SimList, ...]:
    p = list(products())
    return tuple(sim.build_lists(p, sim.make_queries(p, None, seed=0)))


def test_queries_and_lists_are_deterministic() -> None:
    p = list(products())
    q1, q2 = sim.make_queries(p, 40, seed=3), sim.make_queries(list(reversed(p)), 40, seed=3)
    assert [q.query_id for q in q1] == [q.query_id for q in q2]
    assert len({q.query_id for q in q1}) == 40
    lists = sample_lists()
    assert all(len(s.candidates) <= 60 for s in lists)
    assert all(any(v > 0 for v in s.truth.values()) for s in lists)
    assert 0 < sum(s.heldout for s in lists) < len(lists)


def test_bm25_ranks_matching_products_first() -> None:
    p = list(products())
    shirt = next(x for x in p if x.article_type == "Shirts" and x.base_colour == "Black")
    top = sim.Bm25(p).search("black shirts", 5)
    assert top and top[0][1] >= top[-1][1]
    by_id = {x.id: x for x in p}
    assert by_id[top[0][0]].article_type == "Shirts"
    assert shirt.id in {d for d, _ in sim.Bm25(p).search("black shirts", 60)}


def test_relevance_grades() -> None:
    q = sim.SimQuery("q", "black shirts for men", "Shirts", "Black", "Men", "Topwear")
    mk = lambda **kw: Product(id="1", title="t", **kw)  # noqa: E731
    assert sim.relevance_grade(q, mk(article_type="Shirts", base_colour="Black", gender="Men")) == 3
    assert (
        sim.relevance_grade(q, mk(article_type="Shirts", base_colour="black", gender="Unisex")) == 3
    )
    assert (
        sim.relevance_grade(q, mk(article_type="Shirts", base_colour="Black", gender="Women")) == 2
    )
    assert sim.relevance_grade(q, mk(article_type="Shirts", base_colour="Blue", gender="Men")) == 1
    assert (
        sim.relevance_grade(
            q, mk(article_type="Tshirts", sub_category="Topwear", base_colour="Black", gender="Men")
        )
        == 1
    )
    assert sim.relevance_grade(q, mk(article_type="Jeans", base_colour="Black")) == 0
    assert sim.relevance_grade(q, mk()) == 0  # missing attributes do not crash


def test_simulated_clicks_are_labelled_seeded_and_position_biased() -> None:
    lists = list(sample_lists())[:60]
    a = sim.simulate_clicks(lists, sessions=20, seed=5)
    b = sim.simulate_clicks(lists, sessions=20, seed=5)
    assert [r.clicked for r in a] == [r.clicked for r in b]
    assert all(r.simulated and r.to_json()["simulated"] is True for r in a)
    ctr = {pos: np.mean([r.clicked for r in a if r.position == pos]) for pos in (0, 1, 20, 40)}
    assert ctr[0] > ctr[1] > ctr[20] >= ctr[40]


def test_click_log_jsonl_roundtrip(tmp_path: Path) -> None:
    lists = list(sample_lists())[:20]
    records = sim.simulate_clicks(lists, sessions=5, seed=1)
    path = tmp_path / "clicks.jsonl"
    assert ltr_data.write_jsonl(path, (r.to_json() for r in records)) == len(records)
    rows = ltr_data.read_clicks(path)
    docs = {c.doc_id: c.doc for s in lists for c in s.candidates}
    from_file = ltr_data.training_from_clicks(rows, docs, reference_time=0.0)
    in_memory = ltr_data.training_from_clicks(ltr_data.rows_from_sim(records), docs)
    np.testing.assert_array_equal(from_file.x, in_memory.x)
    np.testing.assert_array_equal(from_file.weight, in_memory.weight)
    assert from_file.n_queries == 20


def test_skip_above_keeps_examined_impressions() -> None:
    rows = [
        ltr_data.ClickRow("q", f"d{i}", i, clicked=(i == 1), session="s1") for i in range(4)
    ] + [ltr_data.ClickRow("q", f"d{i}", i, clicked=False, session="s2") for i in range(4)]
    kept = ltr_data.examined(rows)
    assert [(r.session, r.position) for r in kept] == [("s1", 0), ("s1", 1)]


@pytest.mark.parametrize(
    ("line", "parse"),
    [
        ({"doc_id": "1", "position": 0, "clicked": True}, ltr_data.parse_click),
        ({"query_id": "q", "doc_id": "1", "position": -1, "clicked": True}, ltr_data.parse_click),
        ({"query_id": "q", "doc_id": "1", "position": 0, "clicked": "yes"}, ltr_data.parse_click),
        ({"query_id": "q", "doc_id": "1", "grade": "high"}, ltr_data.parse_judgment),
        ({"query_id": "q", "doc_id": "1", "grade": 2, "doc": [1]}, ltr_data.parse_judgment),
        (["not", "an", "object"], ltr_data.parse_judgment),
    ],
)
def test_bad_records_are_rejected(line: object, parse: object) -> None:
    with pytest.raises(InvalidInput):
        parse(line, 7)  # type: ignore[operator]


def test_judgment_lists_train_a_model(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    p = list(products())
    lists = list(sample_lists())[:80]
    ltr_data.write_jsonl(
        path,
        (
            {
                "query_id": s.query.query_id,
                "doc_id": c.doc_id,
                "grade": s.truth[c.doc_id],
                "score": c.score,
                "signals": dict(c.signals),
            }
            for s in lists
            for c in s.candidates
        ),
    )
    docs = {x.id: doc_from_product(x) for x in p}
    judged = ltr_data.lists_from_judgments(ltr_data.read_judgments(path), docs)
    assert len(judged) == len(lists)
    assert [c.doc_id for c in judged[0].candidates] == [c.doc_id for c in lists[0].candidates]
    ts = ltr_data.training_from_lists(judged)
    model = train_model(
        ts.x, ts.y, groups=ts.groups, sample_weight=ts.weight, params=TrainParams(n_estimators=10)
    )
    assert model.predict(ts.x).shape == ts.y.shape


def test_ndcg_matches_the_evaluation_metric() -> None:
    labels = {"a": 3, "b": 0, "c": 1, "d": 2}
    for ranked in (["a", "b", "c", "d"], ["d", "c", "b", "a"], ["b", "x", "a"]):
        assert ltr_data.ndcg_at_k(ranked, labels, 3) == pytest.approx(
            metrics.ndcg_at_k(ranked, labels, 3)
        )


def _heldout() -> list[ltr_data.RankedList]:
    return ltr_data.lists_from_sim([s for s in sample_lists() if s.heldout])


def test_shipped_model_raises_ndcg_on_heldout_simulated_queries() -> None:
    ev = ltr_data.evaluate(_heldout(), load_model(), [RerankBlend()])
    after = ev["ndcg_at_10_after_by_ltr_weight"][f"{RerankBlend().ltr_weight:g}"]
    assert ev["n_queries"] >= 30
    assert after > ev["ndcg_at_10_before"] + 0.005


@pytest.mark.slow
def test_training_on_simulated_clicks_raises_ndcg() -> None:
    """The default training recipe, from scratch on training queries only, two seeds."""
    p = list(products())
    names = [f for f in FEATURES if not f.startswith(("bm25", "recency_days"))]
    gains = []
    for seed in (0, 1):
        lists = sim.build_lists(p, sim.make_queries(p, None, seed=seed))
        train = [s for s in lists if not s.heldout]
        heldout = ltr_data.lists_from_sim([s for s in lists if s.heldout])
        assert not {rl.query_id for rl in heldout} & {s.query.query_id for s in train}
        clicks = sim.simulate_clicks(train, sessions=30, seed=seed)
        docs = {c.doc_id: c.doc for s in train for c in s.candidates}
        ts = ltr_data.training_from_clicks(ltr_data.rows_from_sim(clicks), docs)
        model = train_model(
            ts.x, ts.y, groups=ts.groups, sample_weight=ts.weight, seed=seed, feature_names=names
        )
        ev = ltr_data.evaluate(heldout, model, [RerankBlend(ltr_weight=0.5)])
        gains.append(ev["ndcg_at_10_after_by_ltr_weight"]["0.5"] - ev["ndcg_at_10_before"])
    assert min(gains) > 0.0
    assert float(np.mean(gains)) > 0.005
