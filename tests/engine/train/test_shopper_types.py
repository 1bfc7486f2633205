"""The shopper type head and the validation choice of the category step, on toy data."""

from __future__ import annotations

import numpy as np

from engine.train.shopper import item_chunks
from engine.train.shopper_types import choose_category_step, train_type_head


def test_type_head_learns_separable_types() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 12)).astype(np.float32)
    x[np.arange(600), y] += 4.0
    y[:20] = -1  # unknown types are dropped
    head = train_type_head(x, y, 3, hidden=16, epochs=60)
    import torch

    with torch.no_grad():
        pred = head(torch.from_numpy(x[20:])).argmax(1).numpy()
    assert (pred == y[20:]).mean() > 0.9


def test_category_step_prefers_the_informative_classifier() -> None:
    rng = np.random.default_rng(1)
    vocab = ["Tshirts", "Jeans", "Caps"]
    n, g = 60, 90
    gallery_types = [vocab[i % 3] for i in range(g)]
    gallery = rng.normal(size=(g, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    truth = [vocab[i % 3] for i in range(n)]
    queries = rng.normal(size=(n, 8)).astype(np.float32)  # the vote is noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    head = np.full((n, 3), 0.1, np.float32)
    head[np.arange(n), np.arange(n) % 3] = 0.8  # the head is right
    attr = np.full((n, 3), 1 / 3, np.float32)  # the attribute head says nothing
    out = choose_category_step(
        head, attr, vocab, queries, gallery, gallery_types, truth, list(range(n))
    )
    assert out["type_weight"] > 0.0 and out["category_alpha"] >= 0.5  # the head decides
    chosen = f"{out['type_weight']}/{out['category_alpha']}"
    assert out["val_category_top1"][chosen] == 1.0 > out["val_category_top1"]["0.0/0.25"]
    assert out["category_threshold"] in (0.0, 0.3, 0.5, 0.7)


def test_item_chunks_grow_by_prefix() -> None:
    ids = [f"{i:05d}" for i in range(0, 60000, 3)]
    small = item_chunks(ids, 2000, 10, 0)
    big = item_chunks(ids, 4500, 10, 0)
    assert len(small) == 1 and len(small[0]) == 2000
    assert big[0] == small[0] and [len(c) for c in big] == [2000, 2000, 500]
    assert not set(big[1]) & set(big[0])


def test_merged_type_heads_give_the_mean_of_their_logits_and_survive_a_save(tmp_path) -> None:
    import pytest
    import torch

    from engine.models.shopper import ShopperModel, TypeHead
    from engine.train.shopper_types import merge_type_heads

    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    x = rng.normal(size=(300, 10)).astype(np.float32)
    x[np.arange(300), y] += 3.0
    heads = [train_type_head(x, y, 4, hidden=8, epochs=5, seed=s) for s in range(3)]
    merged = merge_type_heads(heads)
    assert merged.net[0].out_features == 24
    xt = torch.from_numpy(x[:50])
    with torch.no_grad():
        mean = torch.stack([h(xt) for h in heads]).mean(0)
        assert torch.allclose(merged(xt), mean, atol=1e-5)
        assert not torch.allclose(heads[0](xt), heads[1](xt))  # the seeds differ
    # train_type_head(members=3) is the same merge of seeds 0, 1, 2
    again = train_type_head(x, y, 4, hidden=8, epochs=5, seed=0, members=3)
    with torch.no_grad():
        assert torch.allclose(again(xt), merged(xt), atol=1e-5)
    # the checkpoint reads the wider hidden layer back (float16 weights)
    path = ShopperModel(None, None, {}, merged).save(tmp_path / "shopper.pt")
    loaded = ShopperModel.load(path).type_head
    assert loaded is not None and loaded.net[0].out_features == 24
    with torch.no_grad():
        assert torch.allclose(loaded(xt).float(), merged(xt), atol=0.05)
    with pytest.raises(ValueError):
        merge_type_heads([heads[0], TypeHead(10, 8, 5)])


def test_split_ids_takes_every_validation_item_by_default() -> None:
    from engine.catalog import is_test_id
    from engine.train.joint_data import is_val_id
    from engine.train.shopper_data import split_ids

    ids = [str(i) for i in range(3000)]
    val_all = [i for i in ids if is_val_id(i)]
    train, val = split_ids(ids, 100, None)
    assert val == sorted(val_all) and len(val) > 0
    assert len(train) == 100 and not any(is_test_id(i) or is_val_id(i) for i in train)
    assert split_ids(ids, 100, 10)[1] == sorted(split_ids(ids, 100, 10)[1])
    assert len(split_ids(ids, 100, 10)[1]) == 10
