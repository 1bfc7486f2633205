"""OpenAPI documentation helpers for routes that read their body themselves (JSON or a
multipart upload): the schema is written here, the validation is the pydantic model's, so the
two say the same thing."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from pydantic import BaseModel


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined: ``openapi_extra`` is copied into the
    document as is, where a ``#/$defs/...`` reference would not resolve."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(deepcopy(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A form field cannot be null (it is left out instead): drop the ``null`` alternative."""
    alternatives = [a for a in prop.get("anyOf", []) if a != {"type": "null"}]
    if not alternatives or len(alternatives) == len(prop.get("anyOf", [])):
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    if len(alternatives) == 1:
        return {**rest, **alternatives[0]}
    return {**rest, "anyOf": alternatives}


def form_schema(options: type[BaseModel], *, lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The multipart form of a photo upload: a ``file`` part plus the options' fields. Object
    fields (``filters``) are JSON parts (OpenAPI's default encoding for an object property);
    ``lists`` may also be sent repeated."""
    props: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the query photo"}
    }
    props.update(
        {k: _not_null(v) for k, v in inline_refs(options.model_json_schema())["properties"].items()}
    )
    for name in lists:
        props[name]["description"] = "repeated and/or comma-separated values"
    return {
        "type": "object",
        "required": ["file"],
        "properties": props,
        "additionalProperties": False,
    }


def body_doc(json_model: type[BaseModel], form: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route taking JSON (``json_model``) or a multipart ``form``."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": inline_refs(json_model.model_json_schema())},
                "multipart/form-data": {"schema": form},
            },
        }
    }
