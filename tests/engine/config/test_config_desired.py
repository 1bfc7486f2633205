"""Pure checks of plugin_config/ rendering (no cluster)."""

from __future__ import annotations

import json

import pytest

from engine.config.desired import CONFIG_DIR, desired_objects
from engine.errors import ConfigError


def test_all_objects_render_with_prefix() -> None:
    objs = desired_objects("shop1", replicas=2)
    names = {(o.kind, o.name) for o in objs}
    assert ("index_template", "shop1-products") in names
    assert ("index_template", "shop1-looks") in names
    assert ("search_pipeline", "shop1-hybrid") in names
    assert {"shop1-text", "shop1-vector", "shop1-hybrid", "shop1-compose"} <= {
        o.name for o in objs if o.kind == "stored_script"
    }
    products = next(o for o in objs if o.name == "shop1-products")
    assert products.body["index_patterns"] == ["shop1-products*"]
    assert products.body["template"]["settings"]["index"]["number_of_replicas"] == 2
    assert (
        products.body["template"]["settings"]["index"]["search.default_pipeline"] == "shop1-hybrid"
    )
    assert "@PREFIX@" not in json.dumps([o.body for o in objs])


def test_digest_is_stable_and_content_sensitive() -> None:
    a = desired_objects("p", replicas=0)
    b = desired_objects("p", replicas=0)
    c = desired_objects("p", replicas=1)
    assert [o.digest for o in a] == [o.digest for o in b]
    assert [o.digest for o in a] != [o.digest for o in c]


def test_vector_fields_use_lucene_engine() -> None:
    tpl = json.loads((CONFIG_DIR / "index_templates" / "products.json").read_text())
    props = tpl["template"]["mappings"]["properties"]
    vectors = {k: v for k, v in props.items() if v.get("type") == "knn_vector"}
    assert {"image_embedding", "text_embedding", "joint_embedding", "binary_code"} <= set(vectors)
    assert all(v["method"]["engine"] == "lucene" for v in vectors.values())


def test_invalid_json_is_a_clear_error(tmp_path) -> None:
    for sub in ("pipelines", "index_templates", "search_templates"):
        (tmp_path / sub).mkdir()
    (tmp_path / "pipelines" / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        desired_objects("p", config_dir=tmp_path)
