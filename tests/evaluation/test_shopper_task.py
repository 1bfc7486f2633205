"""The shopper evaluation task's pieces: real-photo inputs and the served ranking in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.served_photo_search import Gallery, rank
from evaluation.tasks.shopper import _metrics, load_label_map, real_photos


class TwoTypeModel:
    """Attribute head: dimension 0 says 'Tshirts', dimension 1 'Jeans'."""

    attribute_vocab = {"article_type": ["Tshirts", "Jeans"], "base_colour": ["Blue", "Red"]}
    config: dict = {}

    def attribute_probabilities(self, emb: np.ndarray) -> dict[str, np.ndarray]:
        p = np.stack([emb[:, 0] > emb[:, 1], emb[:, 0] <= emb[:, 1]], axis=1).astype(float)
        return {"article_type": p, "base_colour": np.full((len(emb), 2), 0.5)}

    def image_attribute_probabilities(self, feats: np.ndarray, emb: np.ndarray):
        return self.attribute_probabilities(emb)


def test_label_map_and_real_photo_folder(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text('pants = ["Trousers", "Jeans"]\nHats = ["Caps"]\n')
    mapping = load_label_map(tmp_path / "map.toml")
    assert mapping == {"pants": {"Trousers", "Jeans"}, "hats": {"Caps"}}
    Image.new("RGB", (40, 30), (9, 9, 9)).save(tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    (tmp_path / "labels.csv").write_text("image,label\na.jpg,Pants\nb.jpg,hats\na.jpg,socks\n")
    images, allowed, labels = real_photos(tmp_path, tmp_path / "labels.csv", tmp_path / "map.toml")
    assert labels == ["pants"] and allowed == [{"Trousers", "Jeans"}] and images[0].size == (40, 30)


def test_served_ranking_restricts_to_the_predicted_type_and_scores_it() -> None:
    rng = np.random.default_rng(0)
    n = 40
    vec = rng.normal(size=(n, 8))
    types = ["Tshirts" if v[0] > v[1] else "Jeans" for v in vec]
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    attr = [{"article_type": {t.lower(): 1.0}} for t in types]
    gallery = Gallery([str(i) for i in range(n)], vec.astype(np.float32), types, attr)  # type: ignore[arg-type]
    queries = vec[:5] + rng.normal(scale=0.05, size=(5, 8))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ranked = rank(TwoTypeModel(), gallery, queries.astype(np.float32), queries, k=10)
    assert ranked.category == types[:5]
    for i in range(5):
        assert all(types[j] == types[i] for j in ranked.top[i])
    m = _metrics(ranked, gallery, list(range(5)), [{t} for t in types[:5]])
    assert m["type_p_at_10"] == 1.0 and m["category_top1"] == 1.0
    assert m["exact_recall_at_10"] == 1.0  # a slightly moved copy finds its item
    excluded = rank(TwoTypeModel(), gallery, queries.astype(np.float32), queries, exclude=range(5))
    assert all(i not in excluded.top[i] for i in range(5))
