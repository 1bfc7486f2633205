"""The Elasticsearch dialect of our request bodies and index templates (pure: no I/O).

The services build OpenSearch-shaped bodies (:mod:`engine.queries`, :mod:`engine.look_queries`);
:class:`engine.es_backend.ElasticsearchBackend` sends them through these translations, so the
services stay engine-agnostic and each dialect is pinned by its own golden files
(``tests/golden/es/*.json``, checked by ``tests/engine/test_es_dialect.py``).

What differs, and how (Elasticsearch 8.19, the ``integ-test-zip`` modules):

* ``knn_vector`` (Lucene HNSW, cosinesimil) -> ``dense_vector`` (``index: true``,
  ``similarity: cosine``, ``index_options: int8_hnsw`` with the same ``m``/``ef_construction``).
  Scores are ``(1 + cos) / 2`` on both engines.
* the binary code (``data_type: binary``, hamming) -> ``dense_vector element_type: bit`` with
  ``similarity: l2_norm`` (Hamming on bits); its score is ``(bits - hamming) / bits`` (OpenSearch:
  ``1 / (1 + hamming)``) - only the order matters, the coarse pass is re-ranked by exact cosine.
* a ``knn`` query at the top -> the ``knn`` search section (``query_vector``, ``k``,
  ``num_candidates``, ``filter``: efficient filtering, like Lucene's on OpenSearch); inside
  other queries (``function_score``, ``nested``) -> the ``knn`` query.
* nested k-NN with a filter on a nested field (``items.slot``): Elasticsearch's k-NN filter only
  sees top-level fields, so the nested filter becomes a ``bool`` filter on the nested k-NN
  (post-filtering ``NESTED_OVERSAMPLE`` x ``k`` candidates).
* the soft attribute filter (a painless ``script_score`` on OpenSearch; no lang-painless here)
  -> ``function_score`` with the same factors: ``max(p, floor)`` as ``field_value_factor``
  where ``p >= floor`` else ``weight: floor``; ``max(1 - p, floor)`` as a ``linear`` decay
  (origin 0, scale 0.5, decay 0.5: exactly ``1 - p``) where ``p <= 1 - floor`` else ``floor``.
  Fields the index has not mapped are left out (the script's ``containsKey``).
* the coarse pass's exact cosine ``rescore`` (the k-NN plugin's ``knn_score`` script) -> the
  coarse hits come back with their vectors and the backend re-ranks them (:func:`exact_rerank`).
* ``hybrid`` queries (the neural-search normalisation pipeline) -> :func:`hybrid_parts`: the
  two sub-queries, each sent on its own, fused by the backend with the same min-max +
  weighted arithmetic mean (:mod:`engine.search.fusion`).
* text analysis: without analysis-common there are no stemmer, synonym or ascii-folding
  filters; analyzers keep the ``standard`` tokenizer and ``lowercase`` (core) only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.search.fusion import fuse

JSON = dict[str, Any]

NUM_CANDIDATES_FACTOR = 2  # HNSW candidates per k (OpenSearch/Lucene: k); int8 needs a margin
MAX_NUM_CANDIDATES = 10_000
NESTED_OVERSAMPLE = 4
CORE_TOKEN_FILTERS = frozenset({"lowercase", "stop"})
_OS_ONLY_INDEX_SETTINGS = ("knn", "search.default_pipeline")


def num_candidates(k: int) -> int:
    return max(int(k), min(MAX_NUM_CANDIDATES, NUM_CANDIDATES_FACTOR * int(k)))


# --------------------------------------------------------------------------- mappings


def dense_vector(spec: Mapping[str, Any], quantize: bool = True) -> JSON:
    """A ``knn_vector`` field definition as a ``dense_vector`` one."""
    params = (spec.get("method") or {}).get("parameters") or {}
    hnsw = {k: params[k] for k in ("m", "ef_construction") if k in params}
    dims = int(spec["dimension"])
    if spec.get("data_type") == "binary" or spec.get("space_type") == "hamming":
        return {
            "type": "dense_vector",
            "element_type": "bit",
            "dims": dims,
            "index": True,
            "similarity": "l2_norm",
            "index_options": {"type": "hnsw", **hnsw},
        }
    space = spec.get("space_type", "l2")
    similarity = {"cosinesimil": "cosine", "innerproduct": "max_inner_product", "l2": "l2_norm"}
    if space not in similarity:
        raise ConfigError(f"no Elasticsearch similarity for space_type {space!r}")
    return {
        "type": "dense_vector",
        "dims": dims,
        "index": True,
        "similarity": similarity[space],
        "index_options": {"type": "int8_hnsw" if quantize else "hnsw", **hnsw},
    }


def _properties(props: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    for name, spec in props.items():
        if not isinstance(spec, dict):
            out[name] = spec
        elif spec.get("type") == "knn_vector":
            out[name] = dense_vector(spec)
        elif "properties" in spec:
            out[name] = {**spec, "properties": _properties(spec["properties"])}
        else:
            out[name] = spec
    return out


def _core_analysis(analysis: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    for kind in ("analyzer", "normalizer"):
        defs = {}
        for name, d in (analysis.get(kind) or {}).items():
            d = dict(d)
            if "filter" in d:
                d["filter"] = [f for f in d["filter"] if f in CORE_TOKEN_FILTERS]
            defs[name] = d
        if defs:
            out[kind] = defs
    return out


def index_template(os_template: Mapping[str, Any], *, analysis_common: bool = False) -> JSON:
    """An OpenSearch index template (plugin_config/index_templates/) for Elasticsearch.

    ``analysis_common``: the node has that module (a full distribution): the analysis
    section is kept as it is; otherwise only core token filters remain."""
    t = copy.deepcopy(dict(os_template))
    tpl = t.get("template") or {}
    settings = tpl.get("settings") or {}
    index = settings.get("index") or {}
    for key in _OS_ONLY_INDEX_SETTINGS:
        index.pop(key, None)
    if "analysis" in settings and not analysis_common:
        settings["analysis"] = _core_analysis(settings["analysis"])
    mappings = tpl.get("mappings") or {}
    if "properties" in mappings:
        mappings["properties"] = _properties(mappings["properties"])
    return t


# --------------------------------------------------------------------------- queries


def _knn_spec(knn: Mapping[str, Any]) -> tuple[str, JSON]:
    if len(knn) != 1:
        raise ConfigError(f"a knn query names one field, found {sorted(knn)}")
    ((field, spec),) = knn.items()
    return field, spec


def knn_clause(knn: Mapping[str, Any], mapped: Iterable[str] | None = None) -> JSON:
    """An OpenSearch ``knn`` query (``{field: {vector, k, filter}}``) as Elasticsearch's
    (the same object serves as the search section and as the ``knn`` query)."""
    field, spec = _knn_spec(knn)
    k = int(spec["k"])
    out: JSON = {
        "field": field,
        "query_vector": list(spec["vector"]),
        "k": k,
        "num_candidates": num_candidates(k),
    }
    if spec.get("filter") is not None:
        out["filter"] = query(spec["filter"], mapped)
    return out


def _nested(n: Mapping[str, Any], mapped: Iterable[str] | None) -> JSON:
    n = dict(n)
    inner = n.get("query") or {}
    path = str(n.get("path", ""))
    if set(inner) == {"knn"}:
        field, spec = _knn_spec(inner["knn"])
        flt = spec.get("filter")
        if flt is not None and field.startswith(path + "."):
            # filters inside a nested knn only see top-level fields on Elasticsearch
            k = int(spec["k"]) * NESTED_OVERSAMPLE
            knn = knn_clause({field: {"vector": spec["vector"], "k": k}}, mapped)
            n["query"] = {"bool": {"must": [{"knn": knn}], "filter": [query(flt, mapped)]}}
            return {"nested": n}
        n["query"] = {"knn": knn_clause(inner["knn"], mapped)}
        return {"nested": n}
    n["query"] = query(inner, mapped)
    return {"nested": n}


def soft_filter_functions(
    wanted: Iterable[str], unwanted: Iterable[str], floor: float, mapped: Iterable[str] | None
) -> list[JSON]:
    """``function_score`` functions equal to the soft filter script's factors."""
    known = None if mapped is None else set(mapped)
    fl = float(floor)
    out: list[JSON] = []
    for w in wanted:
        if not w:
            continue
        if known is not None and w not in known:
            out.append({"weight": fl})  # p = 0 everywhere: max(0, floor)
            continue
        keep = {"range": {w: {"gte": fl}}}
        out.append({"filter": keep, "field_value_factor": {"field": w, "missing": 0.0}})
        out.append({"filter": {"bool": {"must_not": [keep]}}, "weight": fl})
    for u in unwanted:
        if not u or (known is not None and u not in known):
            continue  # p = 0: factor 1
        clip = {"range": {u: {"gt": 1.0 - fl}}}
        out.append({"filter": clip, "weight": fl})
        out.append(
            {
                "filter": {"bool": {"must_not": [clip]}},
                "linear": {u: {"origin": 0.0, "scale": 0.5, "decay": 0.5}},
            }
        )
    return out


def soft_fields(body: Mapping[str, Any]) -> list[str]:
    """The attribute fields a body's soft filter script reads (to check which are mapped)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ss = node.get("script_score")
            if isinstance(ss, dict) and (ss.get("script") or {}).get("lang") == "painless":
                p = ss["script"].get("params") or {}
                out.extend(str(x) for x in [*p.get("wanted", []), *p.get("unwanted", [])] if x)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(body)
    return list(dict.fromkeys(out))


def _script_score(ss: Mapping[str, Any], mapped: Iterable[str] | None) -> JSON:
    script = ss.get("script") or {}
    params = script.get("params") or {}
    if script.get("lang") != "painless" or not {"wanted", "unwanted", "floor"} <= set(params):
        raise ConfigError(
            "Elasticsearch here has no scripting (lang-painless); only the soft attribute "
            "filter script is translated"
        )
    funcs = soft_filter_functions(params["wanted"], params["unwanted"], params["floor"], mapped)
    inner = query(ss.get("query") or {"match_all": {}}, mapped)
    if not funcs:
        return inner
    return {
        "function_score": {
            "query": inner,
            "functions": funcs,
            "score_mode": "multiply",
            "boost_mode": "multiply",
        }
    }


def query(q: Mapping[str, Any], mapped: Iterable[str] | None = None) -> JSON:
    """An OpenSearch query clause in Elasticsearch's dialect (recursively)."""
    if not isinstance(q, Mapping) or len(q) != 1:
        return dict(q) if isinstance(q, Mapping) else q
    ((kind, val),) = q.items()
    if kind == "knn":
        return {"knn": knn_clause(val, mapped)}
    if kind == "nested":
        return _nested(val, mapped)
    if kind == "script_score":
        return _script_score(val, mapped)
    if kind == "hybrid":
        raise ConfigError("a hybrid query has no single-request Elasticsearch form (hybrid_parts)")
    if kind == "bool":
        b: JSON = {}
        for occ, clauses in val.items():
            if occ in ("must", "filter", "should", "must_not"):
                if isinstance(clauses, list):
                    b[occ] = [query(c, mapped) for c in clauses]
                else:
                    b[occ] = query(clauses, mapped)
            else:
                b[occ] = clauses
        return {"bool": b}
    return {kind: copy.deepcopy(val)}


def search_body(body: Mapping[str, Any], mapped: Iterable[str] | None = None) -> JSON:
    """A (non-hybrid) search body; a top-level ``knn`` query becomes the ``knn`` section."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k != "search_pipeline"}
    q = out.pop("query", None)
    if q is None:
        return out
    if set(q) == {"knn"}:
        out["knn"] = knn_clause(q["knn"], mapped)
    else:
        out["query"] = query(q, mapped)
    return out


def hybrid_parts(body: Mapping[str, Any]) -> tuple[list[JSON], int, int]:
    """A ``hybrid`` body as its sub-query bodies (bm25, vector), each ``depth`` deep, with the
    page size: ``(bodies, depth, size)``. Depth is the body's ``pagination_depth`` (at least
    the page), as the normalisation processor's lists are on OpenSearch."""
    hybrid = (body.get("query") or {}).get("hybrid")
    if not isinstance(hybrid, dict):
        raise ConfigError("not a hybrid query body")
    size = int(body.get("size", 10))
    depth = max(int(hybrid.get("pagination_depth") or size), size)
    bodies = []
    for sub in hybrid["queries"]:
        b: JSON = {"size": depth, "query": sub}
        for key in ("_source", "stored_fields"):
            if key in body:
                b[key] = copy.deepcopy(body[key])
        bodies.append(search_body(b))
    return bodies, depth, size


def native_hybrid_body(body: Mapping[str, Any], weights: tuple[float, float]) -> JSON:
    """A ``hybrid`` body as ONE Elasticsearch request: the BM25 sub-query as ``query`` and the
    vector sub-query as the ``knn`` section (``k`` = the body's depth), each boosted by its
    weight. Elasticsearch adds the boosted raw scores (``w_bm25 * bm25 + w_vector * (1 + cos)
    / 2``; a hit of one list only gets that list's part): no normalisation, so BM25's unbounded
    scores dominate unless the weights are re-tuned for this engine (the README measures it)."""
    hybrid = (body.get("query") or {}).get("hybrid")
    if not isinstance(hybrid, dict) or len(hybrid.get("queries") or []) != 2:
        raise ConfigError("not a two-query hybrid body (bm25, knn)")
    text_q, vector_q = hybrid["queries"]
    if set(vector_q) != {"knn"}:
        raise ConfigError("the hybrid's second sub-query must be a knn query")
    size = int(body.get("size", 10))
    depth = max(int(hybrid.get("pagination_depth") or size), size)
    w_bm25, w_vector = (float(w) for w in weights)
    field, spec = _knn_spec(vector_q["knn"])
    knn = knn_clause({field: {**spec, "k": depth}})
    knn["boost"] = w_vector
    out: JSON = {
        "size": size,
        "query": {"bool": {"must": [query(text_q)], "boost": w_bm25}},
        "knn": knn,
    }
    for key in ("from", "_source", "stored_fields"):
        if key in body:
            out[key] = copy.deepcopy(body[key])
    return out


def exact_rerank(body: Mapping[str, Any]) -> tuple[JSON, str, list[float], int] | None:
    """A coarse body (``rescore`` with the k-NN plugin's ``knn_score``) as the coarse search
    returning ``field`` too, plus ``(field, query vector, page size)`` for the backend's exact
    cosine re-rank; None when the body has no such rescore."""
    rescore = body.get("rescore")
    if not isinstance(rescore, dict):
        return None
    ss = ((rescore.get("query") or {}).get("rescore_query") or {}).get("script_score") or {}
    script = ss.get("script") or {}
    if script.get("lang") != "knn" or script.get("source") != "knn_score":
        raise ConfigError("only the knn_score exact rescore is translated for Elasticsearch")
    params = script["params"]
    field = str(params["field"])
    coarse = {k: copy.deepcopy(v) for k, v in body.items() if k != "rescore"}
    coarse["size"] = int(rescore.get("window_size", body.get("size", 10)))
    src = coarse.get("_source")
    includes = list((src or {}).get("includes", [])) if isinstance(src, dict) else []
    coarse["_source"] = {"includes": [*includes, field] if field not in includes else includes}
    return search_body(coarse), field, list(params["query_value"]), int(body.get("size", 10))


# --------------------------------------------------------------------------- combining results


def _hits(res: Mapping[str, Any]) -> list[JSON]:
    return list(res.get("hits", {}).get("hits", []))


def fuse_responses(responses: list[JSON], weights: tuple[float, float], size: int) -> JSON:
    """The sub-query responses of :func:`hybrid_parts` as one search response: min-max
    normalised per list, weighted arithmetic mean (:func:`engine.search.fusion.fuse`, the
    normalisation processor's semantics), best ``size`` first."""
    lists = [{str(h["_id"]): float(h["_score"]) for h in _hits(r)} for r in responses]
    sources: dict[str, JSON] = {}
    for r in responses:
        for h in _hits(r):
            sources.setdefault(str(h["_id"]), h)
    hits = [{**sources[f.doc_id], "_score": f.score} for f in fuse(lists, weights)[:size]]
    took = sum(int(r.get("took", 0)) for r in responses)
    return {"took": took, "hits": {"max_score": hits[0]["_score"] if hits else None, "hits": hits}}


def rerank_exact(
    res: JSON, field: str, query_vector: list[float], size: int, keep_field: bool = False
) -> JSON:
    """Coarse hits re-scored by exact cosine on ``field`` (``(1 + cos) / 2``, like the k-NN
    plugin's ``knn_score`` on a cosinesimil field), best ``size`` first."""
    q = np.asarray(query_vector, dtype=np.float32)
    qn = float(np.linalg.norm(q))
    out = []
    for h in _hits(res):
        s = dict(h.get("_source") or {})
        vec = s.get(field) if keep_field else s.pop(field, None)
        score = 0.0
        if vec:
            v = np.asarray(vec, dtype=np.float32)
            n = float(np.linalg.norm(v)) * qn
            score = (1.0 + float(v @ q) / n) / 2.0 if n > 0 else 0.0
        out.append({**h, "_source": s, "_score": score})
    out.sort(key=lambda h: (-h["_score"], str(h["_id"])))
    return {**res, "hits": {**res.get("hits", {}), "hits": out[:size]}}
