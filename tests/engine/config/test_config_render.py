"""``python -m engine.config render``: the request bodies per query type and dialect."""

from __future__ import annotations

import json

from engine.config.__main__ import main
from engine.config.render import VECTOR, bodies


def test_elasticsearch_bodies_have_no_opensearch_only_parts() -> None:
    out = bodies("elasticsearch")
    assert {"text", "vector", "image", "compose"} <= set(out)
    text = json.dumps(out)
    assert VECTOR in text
    for key in ('"hybrid"', '"painless"', f'"vector": "{VECTOR}"', '"search_pipeline"'):
        assert key not in text
    assert out["vector"]["knn"]["query_vector"] == VECTOR


def test_opensearch_bodies_are_the_builders() -> None:
    out = bodies("opensearch")
    assert "hybrid" in out["hybrid"]["query"]
    assert out["vector"]["query"]["knn"]["text_embedding"]["vector"] == VECTOR


def test_cli_prints_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["render", "--engine", "elasticsearch", "--text", "blue jeans"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "blue jeans" in json.dumps(printed["text"])
