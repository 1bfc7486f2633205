"""Optional LTR plugin export: detection, exact RankLib trees, feature queries (issue 8)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from engine.backend import Backend
from engine.errors import ClusterUnavailable
from engine.ltr.features import FEATURES, N_VALUES, VALUE_NAMES, Candidate, extract_features, impute
from engine.ltr.rerank import load_model
from engine.train.ltr_export import (
    export_files,
    feature_template,
    featureset,
    ltr_plugin_available,
    ranklib_definition,
    render_for_test,
    render_mustache_source,
    upload,
)
from engine.train.ltr_model import TrainParams, train_model


class FakePlugins:
    def __init__(self, components: set[str] | None) -> None:
        self.components = components

    def plugins(self) -> set[str]:
        if self.components is None:
            raise ClusterUnavailable("down")
        return self.components


def test_detection() -> None:
    assert not ltr_plugin_available(FakePlugins({"opensearch-knn"}))  # type: ignore[arg-type]
    assert not ltr_plugin_available(FakePlugins(None))  # type: ignore[arg-type]
    assert ltr_plugin_available(FakePlugins({"opensearch-ltr", "opensearch-knn"}))  # type: ignore[arg-type]


@pytest.mark.opensearch
def test_local_node_has_no_ltr_plugin(cluster: Backend) -> None:
    assert ltr_plugin_available(cluster) is False
    assert upload(cluster, load_model()) is False  # nothing sent, no error


def _eval_ranklib(definition: str, rows: np.ndarray) -> np.ndarray:
    """Evaluate RankLib MART text: left when x[feature] <= threshold (1-based features)."""
    xml = "\n".join(line for line in definition.splitlines() if not line.startswith("##"))
    root = ET.fromstring(xml)

    def walk(split: ET.Element, x: np.ndarray) -> float:
        out = split.find("output")
        if out is not None:
            return float(out.text or "nan")
        f = int((split.findtext("feature") or "0").strip())
        thr = float((split.findtext("threshold") or "nan").strip())
        kids = {s.get("pos"): s for s in split.findall("split")}
        return walk(kids["left"] if np.float32(x[f - 1]) <= thr else kids["right"], x)

    trees = [t.find("split") for t in root.findall("tree")]
    out = []
    for x in rows:
        total = 0.0
        for split in trees:
            assert split is not None
            total += walk(split, x)
        out.append(total)
    return np.array(out)


def test_ranklib_export_is_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.random((600, len(FEATURES)))
    x[:, N_VALUES:] = 0.0
    y = (rng.random(600) < x[:, FEATURES.index("rating")]).astype(int)
    model = train_model(x, y, params=TrainParams(n_estimators=6, max_depth=3, lr_share=0.0))
    body, used = featureset(model, "t")
    assert [f["name"] for f in body["featureset"]["features"]] == used == model.used_features()
    xi = impute(x, model.fill_values)
    cols = [FEATURES.index(f) for f in used]
    got = _eval_ranklib(ranklib_definition(model, used), xi[:, cols])
    np.testing.assert_allclose(got, model.decision_function(x), atol=1e-9)
    paths = export_files(model, tmp_path, "t")
    assert [p.name for p in paths] == ["t.featureset.json", "t.model.json"]
    saved = json.loads(paths[1].read_text())
    assert saved["model"]["model"]["type"] == "model/ranklib"


def test_every_feature_has_a_template() -> None:
    for name in FEATURES:
        template, params = feature_template(name, 0.5)
        source = render_mustache_source(template)
        named = re.findall(r"\{\{#toJson\}\}(\w+)\{\{/toJson\}\}", source)
        named += re.findall(r"\{\{(\w+)\}\}", source)
        assert set(named) == set(params), name
        filled = re.sub(r"\{\{#toJson\}\}\w+\{\{/toJson\}\}", "[]", source)
        filled = re.sub(r"\{\{\w+\}\}", "1", filled)
        assert isinstance(json.loads(filled), dict)


REF = 1_700_000_000.0
EMB = np.random.default_rng(1).normal(size=256)
QUERY_VEC = np.random.default_rng(2).normal(size=256)
DOCS = {
    "a": {
        "id": "a",
        "price": 1000.0,
        "discounted_price": 750.0,
        "rating": 4.0,
        "sales": 99.0,
        "clicks": 0.0,
        "in_stock": True,
        "added_at": int(REF - 3 * 86400),
        "predicted_category_confidence": 0.8,
        "title": "black shirt",
        "image_embedding": EMB.tolist(),
    },
    "b": {"id": "b", "price": 500.0, "discount_pct": 10.0, "in_stock": False, "title": "red dress"},
    "c": {"id": "c", "title": "no business fields at all"},
}


@pytest.mark.opensearch
def test_feature_queries_compute_our_features(cluster: Backend, products_index: str) -> None:
    ok, errors = cluster.bulk(
        ({"_index": products_index, "_id": k, "_source": v} for k, v in DOCS.items()), refresh=True
    )
    assert ok == 3 and not errors
    cands = [Candidate(k, 3.0 - i, v) for i, (k, v) in enumerate(DOCS.items())]
    x = extract_features(cands, REF)
    fill = {n: 0.123 for n in VALUE_NAMES}
    expected = impute(x, fill)
    rel = {
        c.doc_id: float(v)
        for c, v in zip(cands, x[:, FEATURES.index("relevance_norm")], strict=True)
    }
    params = {"now": REF, "relevance_norm": rel, "keywords": "shirt"}
    skipped = {
        "bm25",
        "image_sim",
        "text_sim",
        "joint_sim",
        "rel_log_price",
        "category_conf",
        "soft_attr",
    }
    checked = 0
    for j, name in enumerate(FEATURES):
        base = name.removesuffix("_missing")
        if base in skipped:
            continue
        template, _ = feature_template(name, fill.get(base, 0.0))
        body = {"size": 10, "query": render_for_test(template, params)}
        hits = cluster.search(products_index, body)["hits"]["hits"]
        scores = {h["_id"]: h["_score"] for h in hits}
        for i, c in enumerate(cands):
            want = expected[i, j]
            assert math.isclose(scores[c.doc_id], want, rel_tol=1e-5, abs_tol=1e-5), (
                name,
                c.doc_id,
            )
            checked += 1
    assert checked == 3 * 2 * (len(VALUE_NAMES) - len(skipped))
