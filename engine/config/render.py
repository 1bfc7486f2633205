"""``python -m engine.config render`` — the exact request bodies of each query type.

For clusters without lang-mustache (Elasticsearch's integ-test distribution) there are no stored
search templates: send these bodies instead. ``@VECTOR@`` stands for the query's 256 floats
(``/vectors`` of the API, or the encoder) and ``@CODE@`` for its 32 signed code bytes.
"""

from __future__ import annotations

import json
from typing import Any

from engine import es_dialect
from engine import queries as q

VECTOR = "@VECTOR@"
_DIM = 256


def _vec() -> list[float]:
    return [0.0] * _DIM


def _placeholders(body: Any) -> Any:
    text = json.dumps(body)
    text = text.replace(json.dumps(_vec()), json.dumps(VECTOR))
    text = text.replace(json.dumps([0] * (_DIM // 8)), json.dumps("@CODE@"))
    return json.loads(text)


def bodies(engine: str, text: str = "red dress", size: int = 10) -> dict[str, Any]:
    """One body per query type, in the given engine's dialect (pure)."""
    soft = q.SoftFilter(wanted=("attr_prob.base_colour.red",))
    os_bodies: dict[str, Any] = {
        "text": q.bm25_search_body(text, size=size),
        "vector": q.vector_search_body(q.TEXT_FIELD, _vec(), k=100, size=size),
        "image": q.image_search_body(_vec(), k=100, size=size),
        "compose": q.compose_search_body(_vec(), soft, k=100, size=size),
        "hybrid": q.hybrid_search_body(text, _vec(), k=100, size=size, pagination_depth=60),
    }
    if engine == "opensearch":
        return {k: _placeholders(v) for k, v in os_bodies.items()}
    out: dict[str, Any] = {}
    for name, body in os_bodies.items():
        if name == "hybrid":
            parts, _, _ = es_dialect.hybrid_parts(body)
            out["hybrid (send both, fuse min-max client side)"] = parts
            out["hybrid native (one request, raw scores added; not the default)"] = (
                es_dialect.native_hybrid_body(body, (0.4, 0.6))
            )
        else:
            out[name] = es_dialect.search_body(body, mapped=soft.wanted)
    return {k: _placeholders(v) for k, v in out.items()}
