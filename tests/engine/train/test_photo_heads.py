"""Photo heads of ``engine fit``: seed ensembles merged into one head, the label floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.catalog import Product
from engine.models.joint import ColourHead
from engine.train.colour import ColourConfig, _train_one, merge_heads, train_head
from engine.train.joint_data import build_vocab


def _head(seed: int, hidden: int = 8) -> ColourHead:
    torch.manual_seed(seed)
    head = ColourHead(6, 4, hidden=hidden)
    with torch.no_grad():
        head.mean.copy_(torch.randn(6))
        head.std.copy_(torch.rand(6) + 0.5)
    return head.eval()


def test_merged_head_gives_the_mean_of_the_members_logits() -> None:
    heads = [_head(s) for s in range(3)]
    for h in heads[1:]:
        h.mean.copy_(heads[0].mean)
        h.std.copy_(heads[0].std)
    x = torch.randn(20, 6)
    merged = merge_heads(heads)
    assert merged.net[0].out_features == 24
    with torch.no_grad():
        expected = torch.stack([h(x) for h in heads]).mean(dim=0)
        assert torch.allclose(merged(x), expected, atol=1e-5)
        assert not torch.allclose(merged(x), heads[0](x), atol=1e-3)


def test_heads_of_other_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        merge_heads([ColourHead(6, 4), ColourHead(6, 5)])


class _Model:
    config: dict = {}
    attribute_vocab = {"article_type": ["a", "b", "c"]}


def test_ensemble_members_differ_and_learn_a_separable_task() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    centres = rng.normal(size=(3, 10)) * 3
    x = (centres[y] + rng.normal(size=(300, 10))).astype(np.float32)
    cfg = ColourConfig(epochs=12, hidden=16, members=2, one_cycle=True, threads=1)
    model = _Model()
    model.config = {"image_in": 10}
    a = _train_one(model, x, y, cfg, "article_type", 0)  # type: ignore[arg-type]
    b = _train_one(model, x, y, cfg, "article_type", 1)  # type: ignore[arg-type]
    assert not torch.allclose(a.net[0].weight, b.net[0].weight)
    head = train_head(model, x, y, cfg, "article_type")  # type: ignore[arg-type]
    assert head.net[0].out_features == 32
    with torch.no_grad():
        pred = head(torch.from_numpy(x)).argmax(dim=1).numpy()
    assert (pred == y).mean() > 0.9


def test_a_value_with_two_training_examples_joins_the_label_space() -> None:
    types = ["Dress"] * 10 + ["Jeans"] * 10 + ["Candle"] * 2 + ["Lamp"]
    products = [Product(id=str(i), title="t", article_type=t) for i, t in enumerate(types)]
    vocab = build_vocab(products, {"article_type": "article_type"})
    assert vocab["article_type"] == ["Candle", "Dress", "Jeans"]  # "Lamp": one example only
