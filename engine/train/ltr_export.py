"""Optional export to the OpenSearch Learning-to-Rank plugin (featureset + RankLib model JSON).

Never required: the service re-ranks in Python (:mod:`engine.ltr.rerank`). When a cluster has
the LTR plugin (:func:`ltr_plugin_available`, through ``Backend.plugins()``; the local node
does not have it and detection returns False), :func:`upload` stores a featureset and a model
so the re-ranking can run inside OpenSearch with an ``sltr`` rescore query.

The export is exact for the trees: a GBDT+LR model is an additive tree ensemble whose leaves
carry the LR weights (the intercept is added to the first tree's leaves), written in RankLib's
MART format (``x <= threshold`` goes left, as in scikit-learn). The plugin returns the logit;
``sigmoid(logit)`` is our [0, 1] score (same order). Only the features the trees split on are
exported; each is a query template whose score equals :func:`engine.ltr.features` 's value
(missing values already imputed with the model's fill values):

* document features: painless ``script_score`` over the product fields;
* ``bm25``: a ``multi_match`` of ``{{keywords}}`` (param ``keywords``);
* ``image_sim`` / ``text_sim`` / ``joint_sim``: ``(1 + cosineSimilarity) / 2`` against the
  param ``image_vector`` / ``text_vector`` / ``joint_vector``;
* per-candidate values the service computes (``relevance_norm``, ``rel_log_price``,
  ``category_conf``, ``soft_attr``): a param of the same name holding
  ``{product id: value}`` (absent id = missing);
* ``recency_days`` needs the param ``now`` (epoch seconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.backend import Backend
from engine.errors import EngineError
from engine.ltr.features import MISSING_SUFFIX, SECONDS_PER_DAY
from engine.ltr.model import LtrModel

logger = logging.getLogger(__name__)

LTR_PLUGIN_COMPONENTS = frozenset({"opensearch-ltr", "ltr", "opensearch-learning-to-rank-base"})
BM25_FIELDS = ["title^3", "article_type.text^3", "base_colour.text^2", "attribute_text"]
VECTOR_FIELDS = {
    "image_sim": ("image_embedding", "image_vector"),
    "text_sim": ("text_embedding", "text_vector"),
    "joint_sim": ("joint_embedding", "joint_vector"),
}
MAP_FEATURES = ("relevance_norm", "rel_log_price", "category_conf", "soft_attr")

JSON = dict[str, Any]


def ltr_plugin_available(backend: Backend) -> bool:
    """True when the cluster lists an LTR plugin; False otherwise or when it cannot be asked."""
    try:
        components = backend.plugins()
    except EngineError as exc:
        logger.info("LTR plugin detection: cannot list plugins (%s)", exc.message)
        return False
    return bool(components & LTR_PLUGIN_COMPONENTS)


# --------------------------------------------------------------------------- feature templates

_HAS = "doc.containsKey('{f}') && doc['{f}'].size() != 0"

# painless expression of each document feature's value; NaN-like cases return params.fill
_DOC_SCRIPTS: dict[str, tuple[str, str]] = {
    # name: (condition "value is present", expression of the value)
    "doc_category_conf": (
        _HAS.format(f="predicted_category_confidence"),
        "doc['predicted_category_confidence'].value",
    ),
    "rating": (_HAS.format(f="rating"), "doc['rating'].value"),
    "log_sales": (
        _HAS.format(f="sales") + " && doc['sales'].value >= 0",
        "Math.log10(1.0 + doc['sales'].value)",
    ),
    "log_clicks": (
        _HAS.format(f="clicks") + " && doc['clicks'].value >= 0",
        "Math.log10(1.0 + doc['clicks'].value)",
    ),
    "log_popularity": (
        _HAS.format(f="popularity") + " && doc['popularity'].value >= 0",
        "Math.log10(1.0 + doc['popularity'].value)",
    ),
    "in_stock": (_HAS.format(f="in_stock"), "doc['in_stock'].value ? 1.0 : 0.0"),
    "recency_days": (
        _HAS.format(f="added_at"),
        f"Math.max(0.0, params.now - doc['added_at'].value.toInstant().toEpochMilli() / 1000.0)"
        f" / {SECONDS_PER_DAY}",
    ),
}
_PRICE = (
    "double d = {has_d} ? doc['discounted_price'].value : -1.0; "
    "double p = {has_p} ? doc['price'].value : -1.0; "
).format(has_d=_HAS.format(f="discounted_price"), has_p=_HAS.format(f="price"))
_LOG_PRICE = _PRICE + "double e = d > 0 ? d : p; "
_DISCOUNT = (
    _PRICE + "double pct = -1.0; "
    "if (p > 0 && d >= 0) { pct = 100.0 * (p - d) / p; } "
    f"else if ({_HAS.format(f='discount_pct')}) {{ pct = doc['discount_pct'].value; }} "
    "else { pct = Double.NaN; } "
)


def _script(source: str, params: Mapping[str, Any]) -> JSON:
    return {
        "script_score": {
            "query": {"match_all": {}},
            "script": {"lang": "painless", "source": source, "params": dict(params)},
        }
    }


def _doc_value_source(name: str, missing: bool) -> str:
    """Painless returning the value (imputed with params.fill) or, if ``missing``, 1.0/0.0."""
    if name == "log_price":
        return _LOG_PRICE + (
            "return e >= 0 ? 0.0 : 1.0;"
            if missing
            else "return e >= 0 ? Math.log10(1.0 + e) : params.fill;"
        )
    if name == "discount_pct":
        return _DISCOUNT + (
            "return Double.isNaN(pct) ? 1.0 : 0.0;"
            if missing
            else "return Double.isNaN(pct) ? params.fill : Math.min(100.0, Math.max(0.0, pct));"
        )
    cond, expr = _DOC_SCRIPTS[name]
    if missing:
        return f"return ({cond}) ? 0.0 : 1.0;"
    return f"if ({cond}) {{ return {expr}; }} return params.fill;"


def feature_template(name: str, fill: float) -> tuple[JSON, list[str]]:
    """(query template with ``@@param@@`` placeholders, params) for one model feature."""
    missing = name.endswith(MISSING_SUFFIX)
    base = name[: -len(MISSING_SUFFIX)] if missing else name
    if base == "bm25":
        if missing:
            return _script("return 0.0;", {}), []
        query = {
            "multi_match": {"query": "@@keywords@@", "type": "most_fields", "fields": BM25_FIELDS}
        }
        return {"bool": {"should": [query], "filter": [{"match_all": {}}]}}, ["keywords"]
    if base in VECTOR_FIELDS:
        field, param = VECTOR_FIELDS[base]
        has = f"doc['{field}'].size() != 0"
        src = (
            f"return ({has}) ? 0.0 : 1.0;"
            if missing
            else f"if ({has}) {{ return (1.0 + cosineSimilarity(params.query_value, doc['{field}'])) / 2.0; }} return params.fill;"
        )
        return _script(src, {"query_value": f"@@json:{param}@@", "fill": fill}), [param]
    if base in MAP_FEATURES:
        lookup = "params.values.containsKey(doc['id'].value)"
        src = (
            f"return (doc['id'].size() != 0 && {lookup}) ? 0.0 : 1.0;"
            if missing
            else f"if (doc['id'].size() != 0 && {lookup}) {{ return params.values.get(doc['id'].value); }} return params.fill;"
        )
        return _script(src, {"values": f"@@json:{base}@@", "fill": fill}), [base]
    if base in _DOC_SCRIPTS or base in ("log_price", "discount_pct"):
        params: dict[str, Any] = {"fill": fill}
        names: list[str] = []
        if base == "recency_days":
            params["now"] = "@@num:now@@"
            names.append("now")
        return _script(_doc_value_source(base, missing), params), names
    raise ValueError(f"no LTR plugin template for feature {name!r}")


def render_mustache_source(template: JSON) -> str:
    """The template as the plugin's mustache string (``@@..@@`` placeholders substituted)."""
    text = json.dumps(template, separators=(",", ":"))
    out = []
    for part in text.split('"@@'):
        if '@@"' not in part:
            out.append(part)
            continue
        ph, rest = part.split('@@"', 1)
        if ph.startswith("json:"):
            out.append("{{#toJson}}" + ph[5:] + "{{/toJson}}" + rest)
        elif ph.startswith("num:"):
            out.append("{{" + ph[4:] + "}}" + rest)
        else:
            out.append('"{{' + ph + '}}"' + rest)
    return "".join(out)


def render_for_test(template: JSON, params: Mapping[str, Any]) -> JSON:
    """Substitute ``params`` into a template (what the plugin's mustache does), as a dict."""

    def sub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, str) and value.startswith("@@") and value.endswith("@@"):
            ph = value[2:-2]
            return params[ph.split(":", 1)[1] if ":" in ph else ph]
        return value

    return dict(sub(template))


# --------------------------------------------------------------------------- model


def _fmt(x: float) -> str:
    return repr(float(x))


def featureset(model: LtrModel, name: str) -> tuple[JSON, list[str]]:
    """The plugin featureset body over the features the trees use; (body, their names)."""
    used = model.used_features()
    features = []
    for f in used:
        base = f[: -len(MISSING_SUFFIX)] if f.endswith(MISSING_SUFFIX) else f
        template, params = feature_template(f, float(model.fill_values.get(base, 0.0)))
        features.append(
            {
                "name": f,
                "params": params,
                "template_language": "mustache",
                "template": render_mustache_source(template),
            }
        )
    return {"featureset": {"name": name, "features": features}}, used


def ranklib_definition(model: LtrModel, used: list[str]) -> str:
    """RankLib MART text: one ``<tree>`` per GBDT tree, leaf outputs = LR weights."""
    ordinal = {model.feature_names.index(f): i + 1 for i, f in enumerate(used)}
    lines = [
        "## LambdaMART",
        f"## No. of trees = {len(model.trees)}",
        "## GBDT+LR exported by outfit-search (leaf outputs = logistic regression weights)",
        "<ensemble>",
    ]

    def node(t: Any, i: int, depth: int, bias: float) -> None:
        pad = "\t" * depth
        if t.left[i] == -1:
            lines.append(f"{pad}<output> {_fmt(t.leaf_weight[i] + bias)} </output>")
            return
        lines.append(f"{pad}<feature> {ordinal[int(t.feature[i])]} </feature>")
        lines.append(f"{pad}<threshold> {_fmt(t.threshold[i])} </threshold>")
        for pos, child in (("left", int(t.left[i])), ("right", int(t.right[i]))):
            lines.append(f'{pad}<split pos="{pos}">')
            node(t, child, depth + 1, bias)
            lines.append(f"{pad}</split>")

    for k, tree in enumerate(model.trees):
        bias = model.intercept if k == 0 else 0.0
        lines.append(f'\t<tree id="{k + 1}" weight="1.0">')
        lines.append("\t\t<split>")
        node(tree, 0, 3, bias)
        lines.append("\t\t</split>")
        lines.append("\t</tree>")
    lines.append("</ensemble>")
    return "\n".join(lines) + "\n"


def model_body(model: LtrModel, name: str, used: list[str]) -> JSON:
    return {
        "model": {
            "name": name,
            "model": {"type": "model/ranklib", "definition": ranklib_definition(model, used)},
        }
    }


def export_files(model: LtrModel, out_dir: Path, name: str = "outfit_ltr") -> list[Path]:
    """Write ``<name>.featureset.json`` and ``<name>.model.json`` (plugin request bodies)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fs, used = featureset(model, name)
    paths = [out_dir / f"{name}.featureset.json", out_dir / f"{name}.model.json"]
    paths[0].write_text(json.dumps(fs, indent=2) + "\n")
    paths[1].write_text(json.dumps(model_body(model, name, used), indent=2) + "\n")
    return paths


def upload(backend: Backend, model: LtrModel, name: str = "outfit_ltr") -> bool:
    """Store featureset and model in the cluster's LTR plugin; False (nothing sent) without it."""
    if not ltr_plugin_available(backend):
        logger.info("LTR plugin not installed: nothing exported to the cluster")
        return False
    fs, used = featureset(model, name)
    backend.ltr_upload(name, fs, model_body(model, name, used))
    return True
