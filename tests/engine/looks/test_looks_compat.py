"""The type-aware compatibility model: indexing, persistence, and that training learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.catalog import Product
from engine.errors import InvalidInput, ModelUnavailable
from engine.looks.compat import (
    PAIR_INDEX,
    PAIRS,
    CompatModel,
    build_net,
    pair_indices,
    soft_min,
)
from engine.looks.format import Look, LookItem
from engine.train.looks import LooksTrainConfig, prepare, train
from engine.train.looks_benchmark import CoCategoryBaseline, run_benchmark
from engine.train.looks_vectors import ItemVectors

SLOT_TYPES = {
    "top": ("Tshirts", "Topwear"),
    "bottom": ("Jeans", "Bottomwear"),
    "shoes": ("Casual Shoes", "Shoes"),
}


def test_pair_indices_match_the_pair_table() -> None:
    for (a, b), idx in PAIR_INDEX.items():
        got = pair_indices(torch.tensor([a, b]), torch.tensor([b, a]))
        assert got.tolist() == [idx, idx]
    assert len(PAIRS) == 28


def test_save_load_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CompatModel(
        build_net({"hidden": 32, "space": 16, "pair_dim": 8}).eval(),
        {"hidden": 32, "space": 16, "pair_dim": 8},
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    before = model.score_matrix(x, "top", x, "shoes")
    assert before.shape == (3, 3)
    # symmetric: scoring (x as top, y as shoes) equals (y as shoes, x as top)
    np.testing.assert_allclose(model.score_matrix(x, "shoes", x, "top"), before.T, atol=1e-5)
    path = model.save(tmp_path / "compat.pt")
    loaded = CompatModel.load(path)
    np.testing.assert_allclose(loaded.score_matrix(x, "top", x, "shoes"), before, atol=2e-2)
    proto = loaded.prototype(x[0], "top", "shoes")
    assert proto.shape == (256,) and abs(float(np.linalg.norm(proto)) - 1) < 1e-4


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        CompatModel.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(ModelUnavailable):
        CompatModel.load(bad)


def _synthetic(n_looks: int = 400, seed: int = 0) -> tuple[list[Product], list[Look], ItemVectors]:
    """Items of three slots in 6 hidden styles; a look = one item of each slot, same style."""
    rng = np.random.default_rng(seed)
    styles = rng.standard_normal((6, 256))
    slot_base = {s: rng.standard_normal(256) for s in SLOT_TYPES}
    products, ids, vecs, by_style = [], [], [], {}
    for slot, (atype, sub) in SLOT_TYPES.items():
        for k in range(120):
            pid = f"{slot}-{k}"
            style = k % 6
            v = slot_base[slot] + 1.5 * styles[style] + 0.8 * rng.standard_normal(256)
            products.append(Product(id=pid, title=pid, article_type=atype, sub_category=sub))
            ids.append(pid)
            vecs.append(v / np.linalg.norm(v))
            by_style.setdefault((slot, style), []).append(pid)
    looks = []
    for i in range(n_looks):
        style = int(rng.integers(6))
        items = [LookItem(str(rng.choice(by_style[(s, style)])), s) for s in SLOT_TYPES]
        looks.append(Look(f"look-{i}", items, extra={"anchor_id": items[0].item_id}))
    vectors = ItemVectors.from_arrays(ids, np.asarray(vecs, dtype=np.float32))
    return products, looks, vectors


def test_training_learns_compatibility() -> None:
    products, looks, vectors = _synthetic(250)
    data = prepare(products, looks, vectors)
    assert len(data.pairs) > 0 and data.val_looks and data.test_looks
    cfg = LooksTrainConfig(
        epochs=3, batch_size=128, negatives=32, hidden=64, space=32, pair_dim=16, num_threads=1
    )
    model, info = train(data, cfg)
    assert len(info["history"]) == 3
    baseline = CoCategoryBaseline(data.type_of).fit(data.train_looks)
    res = run_benchmark(
        model,
        vectors,
        data.test_looks,
        data.test_pools,
        baseline=baseline,
        type_of=data.type_of,
        seed=0,
    )
    # chance is 0.25 (FITB) and 0.5 (AUC); the type-only baseline cannot tell styles apart
    assert res["fitb_accuracy"] > 0.5
    assert res["compatibility_auc"] > 0.75
    assert res["fitb_accuracy_popularity_baseline"] == pytest.approx(0.25)
    assert res["partner_recall_at_10"] > res["partner_recall_at_10_random"]


def test_trained_model_stores_references_and_scores_looks_by_their_worst_item(
    tmp_path: Path,
) -> None:
    products, looks, vectors = _synthetic(250)
    data = prepare(products, looks, vectors)
    cfg = LooksTrainConfig(
        epochs=3, batch_size=128, negatives=32, hidden=64, space=32, pair_dim=16, num_threads=1
    )
    model, _ = train(data, cfg)
    refs = model.references
    assert set(refs) == set(SLOT_TYPES)
    # references are training-split items only, at most N per slot
    train_rows = set(np.concatenate(list(data.neg_pools.values())).tolist())
    joint_rows = {tuple(np.round(vectors.joint[r], 5)) for r in train_rows}
    assert all(tuple(np.round(v, 5)) in joint_rows for v in refs["top"][:20])
    # a real look scores above the same look with one item of another style swapped in
    look = data.test_looks[0]
    ids = [it.item_id for it in look.items]
    slots = [it.slot for it in look.items]
    real = model.look_score(vectors.get(ids, "joint"), slots)
    style = int(ids[1].split("-")[1]) % 6
    other = next(
        p.id for p in products if p.id.startswith(slots[1]) and int(p.id.split("-")[1]) % 6 != style
    )
    fake = model.look_score(vectors.get([ids[0], other, ids[2]], "joint"), slots)
    assert real > fake
    z = model.item_calibrated_scores(vectors.get(ids, "joint"), slots)
    assert z.shape == (3, 3) and np.allclose(np.diag(z), 0.0)
    # the references survive save/load (float16) and give the same score
    loaded = CompatModel.load(model.save(tmp_path / "compat.pt"))
    assert set(loaded.references) == set(refs)
    assert loaded.look_score(vectors.get(ids, "joint"), slots) == pytest.approx(real, abs=0.05)
    both = model.look_score(
        vectors.get(ids, "joint"), slots, image_vectors=vectors.get(ids, "text")
    )
    assert np.isfinite(both)
    with pytest.raises(InvalidInput):
        model.look_score(
            vectors.get(ids, "joint"), slots, image_vectors=vectors.get(ids[:2], "text")
        )


def test_look_score_without_references_is_the_pairwise_soft_min() -> None:
    torch.manual_seed(0)
    config = {"hidden": 32, "space": 16, "pair_dim": 8}
    model = CompatModel(build_net(config).eval(), config)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    slots = ["top", "bottom", "shoes"]
    pairs = [
        float(model.score(x[i], slots[i], x[j : j + 1], slots[j])[0])
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    assert model.look_score(x, slots) == pytest.approx(soft_min(pairs))
    with pytest.raises(InvalidInput):
        model.set_references({"top": x[:1]})  # fewer than two references
    with pytest.raises(InvalidInput):
        model.set_references({"cape": x})
