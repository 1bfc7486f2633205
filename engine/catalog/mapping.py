"""A retailer's catalog mapping: which of its columns is which of our fields, how its values
read, where its photos are, how to write a title when it has none, and its taxonomy overrides.

One file, written once (JSON, TOML or YAML; docs/MAPPING.md), used by every command that reads
a catalog (ingest, fit, evaluation, the demo)::

    format = "csv"                       # optional: jsonl | csv | parquet (default: from the name)
    placeholders = ["n.d."]              # extra values that mean "no value"

    [columns]                            # our field = their column
    id = "cod_modelo_color"
    article_type = "des_product_type"
    base_colour = "des_agrup_color_eng"  # the colour group: filters and the colour head
    colour1 = "des_color_specification_esp"

    [attributes]                         # extra attribute columns: name = column
    Fabric = "des_fabric"

    [values.gender]                      # their value = ours (others are kept as they are)
    Female = "Women"

    [images]
    columns = ["des_filename"]           # one or several columns (lists in a cell are split)
    basename = true                      # keep only the file name: looked up in --images

    [text]
    compose_title = "when_missing"       # when_missing | always | never
    title = "{base_colour} {article_type}"   # optional template over our field names

    [taxonomy]                           # engine.catalog.taxonomy
    slots = { "Kimono" = "outerwear" }

The older flat JSON ``{our field: their column}`` (``"attributes.<Name>": column`` for
attributes) is still read: it is the ``[columns]`` table alone, with titles never composed.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.catalog.product import Product
from engine.catalog.taxonomy import Taxonomy, canonical_slot
from engine.errors import InvalidInput

# Our fields a [columns] table may name (attributes and images have their own tables).
COLUMN_FIELDS: tuple[str, ...] = tuple(
    f for f in Product.model_fields if f not in ("attributes", "image_urls")
)
MAPPABLE_FIELDS: tuple[str, ...] = tuple(Product.model_fields)

# The fields a composed title is built from when the mapping gives no template.
DEFAULT_TITLE_FIELDS: tuple[str, ...] = ("brand", "base_colour", "article_type")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] = Field(default_factory=lambda: ["image_urls"])
    basename: bool = False  # keep only the file name of each value (paths from elsewhere)


class TextSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compose_title: Literal["when_missing", "always", "never"] = "when_missing"
    title: str | None = None  # a template such as "{brand} {base_colour} {article_type}"

    @field_validator("title")
    @classmethod
    def _known_fields(cls, v: str | None) -> str | None:
        if v is None:
            return v
        unknown = [
            name
            for name in _TEMPLATE_FIELD.findall(v)
            if name not in MAPPABLE_FIELDS and not name.startswith("attributes.")
        ]
        if unknown:
            raise ValueError(f"unknown field(s) in title template: {', '.join(unknown)}")
        return v


class TaxonomySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: dict[str, str] = Field(default_factory=dict)
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    not_in_looks: list[str] = Field(default_factory=list)
    in_looks: list[str] = Field(default_factory=list)

    @field_validator("slots")
    @classmethod
    def _slots(cls, v: dict[str, str]) -> dict[str, str]:
        for slot in v.values():
            canonical_slot(slot)  # raises ValueError with the known slots
        return v

    @field_validator("keywords")
    @classmethod
    def _keyword_slots(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for slot in v:
            canonical_slot(slot)
        return v


class CatalogMapping(BaseModel):
    """How to read one retailer's catalog (see the module docs for the file format)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str | None = None
    format: Literal["jsonl", "csv", "parquet"] | None = None
    placeholders: list[str] = Field(default_factory=list)
    columns: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    images: ImageSpec = Field(default_factory=ImageSpec)
    text: TextSpec = Field(default_factory=TextSpec)
    taxonomy: TaxonomySpec = Field(default_factory=TaxonomySpec)

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(k for k in v if k not in COLUMN_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) in [columns]: {', '.join(unknown)} "
                f"(known: {', '.join(COLUMN_FIELDS)}; attributes go in [attributes], "
                "image columns in [images])"
            )
        return v

    @field_validator("values")
    @classmethod
    def _known_value_fields(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(k for k in v if k not in COLUMN_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) in [values]: {', '.join(unknown)}")
        return v

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_flat(cls, flat: Mapping[str, str]) -> CatalogMapping:
        """The older flat mapping ``{field: column, "attributes.<Name>": column}``."""
        columns: dict[str, str] = {}
        attributes: dict[str, str] = {}
        images = ImageSpec()
        for key, column in flat.items():
            if key.startswith("attributes."):
                attributes[key.split(".", 1)[1]] = column
            elif key == "image_urls":
                images = ImageSpec(columns=[column])
            elif key == "attributes":
                columns_attr = column  # a column holding a JSON object of attributes
                attributes["*"] = columns_attr
            else:
                columns[key] = column
        return cls(
            columns=columns,
            attributes=attributes,
            images=images,
            text=TextSpec(compose_title="never"),
        )

    # ------------------------------------------------------------------ use
    def column(self, field: str) -> str:
        """Their column for one of our fields (the same name when the mapping does not say)."""
        if field == "attributes":
            return self.attributes.get("*", "attributes")
        return self.columns.get(field, field)

    @property
    def attribute_columns(self) -> dict[str, str]:
        """Extra attribute name -> column (without the whole-object ``*`` entry)."""
        return {k: v for k, v in self.attributes.items() if k != "*"}

    def map_value(self, field: str, value: Any) -> Any:
        table = self.values.get(field)
        if not table or not isinstance(value, str):
            return value
        if value in table:
            return table[value]
        folded = {k.strip().lower(): v for k, v in table.items()}
        return folded.get(value.strip().lower(), value)

    def build_taxonomy(self) -> Taxonomy:
        t = self.taxonomy
        return Taxonomy.from_config(
            slots=t.slots, keywords=t.keywords, not_in_looks=t.not_in_looks, in_looks=t.in_looks
        )

    def compose_title(self, record: Mapping[str, Any]) -> str | None:
        """A title from the mapped record's fields (None when they say nothing)."""
        attrs = record.get("attributes") if isinstance(record.get("attributes"), dict) else {}

        def value(name: str) -> str:
            if name.startswith("attributes."):
                v = (attrs or {}).get(name.split(".", 1)[1])
            else:
                v = record.get(name)
            if v is None:
                return ""
            text = str(v).strip()
            # "TEJANO OSCURO" -> "Tejano Oscuro": shouting codes read badly in a title
            return text.title() if text.isupper() and len(text) > 3 else text

        if self.text.title:
            text = _TEMPLATE_FIELD.sub(lambda m: value(m.group(1)), self.text.title)
        else:
            parts: list[str] = []
            for name in DEFAULT_TITLE_FIELDS:
                v = value(name)
                if v and v.lower() not in {p.lower() for p in parts}:
                    parts.append(v)
            text = " ".join(parts)
        text = " ".join(text.split()).strip(" ,;-")
        return text or None

    def summary(self) -> dict[str, Any]:
        """What the mapping says, for reports and bundle manifests."""
        return self.model_dump(exclude_defaults=True)


# Presets shipped with the project (``--mapping mango`` = ingest/mappings/mango.toml).
PRESETS_DIR = Path(__file__).resolve().parents[2] / "ingest" / "mappings"


def presets() -> dict[str, Path]:
    """Preset name -> file."""
    if not PRESETS_DIR.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(PRESETS_DIR.iterdir())
        if p.suffix.lower() in (".toml", ".json", ".yaml", ".yml")
    }


def resolve_mapping_path(ref: str | Path) -> Path:
    """A mapping file path, or the name of a shipped preset (``mango``, ``myntra``)."""
    path = Path(ref)
    if path.is_file():
        return path
    known = presets()
    if str(ref) in known:
        return known[str(ref)]
    raise InvalidInput(
        f"mapping {ref!s} is neither a file nor a preset (presets: {', '.join(known) or 'none'})",
        mapping=str(ref),
        presets=list(known),
    )


def _parse(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def parse_mapping(data: Any, *, source: str = "mapping") -> CatalogMapping:
    """A parsed mapping document (new format, or the older flat object) -> CatalogMapping."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a mapping must be an object / table", source=source)
    sections = set(CatalogMapping.model_fields)
    is_flat = (
        bool(data) and not (set(data) & sections) and all(isinstance(v, str) for v in data.values())
    )
    try:
        if is_flat:
            unknown = [
                k
                for k in data
                if k not in MAPPABLE_FIELDS and not (k.startswith("attributes.") and len(k) > 11)
            ]
            if unknown:
                raise InvalidInput(
                    f"{source}: unknown field(s) in mapping: {', '.join(sorted(unknown))}",
                    unknown=sorted(unknown),
                    known=list(MAPPABLE_FIELDS),
                )
            return CatalogMapping.from_flat(data)
        return CatalogMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'mapping'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"{source}: invalid mapping: {problems}", source=source) from exc


def load_catalog_mapping(path: str | Path | None) -> CatalogMapping:
    """Read a mapping file (.json, .toml, .yaml/.yml) or a preset by name; None -> the default
    (our own format: the ``myntra`` preset)."""
    if path is None:
        return CatalogMapping(text=TextSpec(compose_title="never"))
    path = resolve_mapping_path(path)
    try:
        data = _parse(path)
    except FileNotFoundError as exc:
        raise InvalidInput(f"mapping file not found: {path}", path=str(path)) from exc
    except (OSError, ValueError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read mapping file {path}: {exc}", path=str(path)) from exc
    except Exception as exc:  # yaml.YAMLError (yaml is imported lazily)
        raise InvalidInput(f"cannot read mapping file {path}: {exc}", path=str(path)) from exc
    return parse_mapping(data, source=str(path))
