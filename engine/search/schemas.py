"""Typed request and response models of the search API (shared by the service and the router)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.hybrid import HybridWeights, integral, normalise_relative, relative_weights_schema
from engine.queries import Filters

MAX_SIZE = 100
MAX_TEXT = 512
MAX_VALUES = 50
MAX_PRICE = 1e12


# Blank characters: Python's whitespace and JavaScript's (regex engines disagree on ``\s``,
# so the schema's pattern lists them explicitly and the validators strip exactly these)
BLANK = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in BLANK) + "]"  # one non-blank character

# a filter value: not blank (the validator strips it), at most 256 characters
Value = Annotated[str, StringConstraints(max_length=256, pattern=NOT_BLANK)]
# a word of query arithmetic (blank ones are dropped)
Word = Annotated[str, StringConstraints(max_length=100)]
# a list, or one value as a plain string (null: none)
Values = Annotated[list[Value], Field(max_length=MAX_VALUES)] | Value | None
Words = Annotated[list[Word], Field(max_length=MAX_VALUES)] | Word | None


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return v


class FilterSpec(BaseModel):
    """Hard filters. Each list matches any of its values (case-insensitive); one value may be
    given as a plain string (always a list after validation)."""

    # strict: always parsed JSON (a form's filters part too): false is no price, "5" no number
    model_config = ConfigDict(extra="forbid", strict=True)

    gender: Values = Field(default_factory=list, examples=[["Women"]])
    article_type: Values = Field(default_factory=list)
    colour: Values = Field(
        default_factory=list,
        description="matches the base colour or a secondary colour",
    )
    brand: Values = Field(default_factory=list)
    # bounded: the cluster stores prices as 32-bit floats (a larger bound would be Infinity)
    min_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    max_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    in_stock: bool | None = Field(default=None, description="true: only items in stock")
    exclude_ids: Annotated[list[Value], Field(max_length=1000)] | Value | None = Field(
        default_factory=list
    )

    @field_validator("gender", "article_type", "colour", "brand", "exclude_ids", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("gender", "article_type", "colour", "brand", "exclude_ids")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = []
        for s in v:
            s = s.strip(BLANK)
            if not s or len(s) > 256:
                raise ValueError("values must be non-empty strings of at most 256 characters")
            out.append(s)
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _price_range(self) -> FilterSpec:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError("min_price must not exceed max_price")
        return self

    def to_filters(self) -> Filters:
        return Filters(
            gender=tuple(self.gender),
            article_type=tuple(self.article_type),
            colour=tuple(self.colour),
            brand=tuple(self.brand),
            min_price=self.min_price,
            max_price=self.max_price,
            in_stock=self.in_stock,
            exclude_ids=tuple(self.exclude_ids),
        )


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: FilterSpec = Field(default_factory=FilterSpec)
    size: Annotated[int, Field(ge=1, le=MAX_SIZE), BeforeValidator(integral)] = 20
    explain: bool = Field(default=False, description="add a per-stage score breakdown per hit")


class TextSearchRequest(_Common):
    """Words -> products: BM25 + k-NN on the joint text vector (hybrid)."""

    model_config = ConfigDict(strict=True)  # a JSON body: the values are the JSON types

    query: str = Field(
        min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK, examples=["red dresses"]
    )
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    weights: Annotated[
        HybridWeights | None,
        WithJsonSchema({"anyOf": [relative_weights_schema(), {"type": "null"}]}),
    ] = Field(
        default=None,
        description="override the installed pipeline's weights for this request (relative: "
        "each in [0, 1000], not both 0; normalised to sum to 1)",
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _relative_weights(cls, v: Any) -> Any:
        return normalise_relative(v)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip(BLANK):
            raise ValueError("query must not be blank")
        return v.strip(BLANK)


class ImageOptions(_Common):
    """Options of an image search (the photo comes as an upload, a URL, base64 or an item id)."""

    category: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: predict the article type and restrict to it when confident",
    )
    coarse: bool | None = Field(
        default=None, description="Hamming coarse pass + exact re-rank (default: service option)"
    )


URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://"
SOURCES = ("url", "base64", "item_id")


class ImageSource(BaseModel):
    """Exactly one of ``url``, ``base64`` or ``item_id`` (or a multipart upload); the schema
    says so with ``oneOf`` (a null field counts as not given)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}} for name in SOURCES
            ]
        }
    )

    url: str | None = Field(
        default=None, min_length=1, max_length=2048, pattern=URL_PATTERN, description="http(s)"
    )
    base64: str | None = Field(
        default=None, min_length=1, description="image bytes, base64 (data: URLs ok)"
    )
    item_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="a catalog product"
    )

    def _check_one_source(self) -> None:
        given = [n for n in SOURCES if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one image source: url, base64, item_id or a file upload"
                + (f" (got {', '.join(given)})" if given else "")
            )


class ImageSearchRequest(ImageOptions, ImageSource):
    """JSON body of ``POST /search/image`` (strict: JSON types; the form, :class:`ImageOptions`,
    has text fields)."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="after")
    def _one_source(self) -> ImageSearchRequest:
        self._check_one_source()
        return self


class ComposeOptions(_Common):
    """Query arithmetic options: words to add and to remove, weights, soft filter."""

    text: str | None = Field(
        default=None,
        max_length=MAX_TEXT,
        description="free-text modifier, e.g. 'but in black, not striped'",
        examples=["this shirt but in black"],
    )
    wanted: Words = Field(default_factory=list)
    unwanted: Words = Field(default_factory=list)
    text_weight: float | None = Field(default=None, ge=0, le=10)
    negative_weight: float | None = Field(default=None, ge=0, le=10)
    soft_filter: bool = Field(default=True, description="multiply by attribute probabilities")
    category: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: restrict to the photo's predicted article type when confident "
        "(skipped when the words name an article type)",
    )

    @field_validator("wanted", "unwanted", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        v = _as_list(v)
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) and "," in v[0]:
            v = [s for s in v[0].split(",")]
        return v

    @field_validator("wanted", "unwanted")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = [s.strip() for s in v if s.strip()]
        if any(len(s) > 100 for s in out):
            raise ValueError("words must be at most 100 characters")
        return out


class ComposeRequest(ComposeOptions, ImageSource):
    """JSON body of ``POST /search/compose`` (strict, like :class:`ImageSearchRequest`)."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="after")
    def _one_source(self) -> ComposeRequest:
        self._check_one_source()
        return self


# --------------------------------------------------------------------------- responses


class HitExplain(BaseModel):
    """Per-stage scores of one hit (fields that do not apply are null)."""

    bm25: float | None = Field(default=None, description="raw BM25 score")
    bm25_normalized: float | None = None
    vector: float | None = Field(default=None, description="cosine similarity to the query")
    vector_normalized: float | None = None
    weights: HybridWeights | None = None
    fused: float | None = Field(default=None, description="client-side recomputed fused score")
    category: str | None = Field(default=None, description="the hit's article type")
    category_match: bool | None = Field(
        default=None, description="the hit is in the predicted category"
    )
    hamming: int | None = Field(default=None, description="Hamming distance of binary codes")
    soft_factor: float | None = Field(default=None, description="soft attribute filter factor")
    attribute_factor: float | None = Field(
        default=None, description="photo search: colour x type agreement factor of the re-rank"
    )
    attribute_probs: dict[str, float] | None = Field(
        default=None, description="attribute probabilities the soft filter used"
    )
    ltr: float | None = Field(
        default=None, description="learning-to-rank score of the quality re-rank (top N only)"
    )


class Hit(BaseModel):
    id: str
    score: float
    title: str | None = None
    brand: str | None = None
    gender: str | None = None
    article_type: str | None = None
    base_colour: str | None = None
    colours: list[str] | None = None
    price: float | None = None
    discounted_price: float | None = None
    in_stock: bool | None = None
    image_urls: list[str] | None = None
    slot: str | None = None
    explain: HitExplain | None = None


class CategoryInfo(BaseModel):
    """How the query photo's category was decided."""

    label: str | None
    confidence: float
    restricted: bool = Field(description="results were restricted to this article type")
    source: Literal["predicted", "item", "filter", "off"]
    fused: dict[str, float] = Field(default_factory=dict)
    classifier: dict[str, float] = Field(default_factory=dict)
    vote: dict[str, float] = Field(default_factory=dict)


class AttributeValue(BaseModel):
    attribute: str
    value: str
    phrase: str
    field: str


class SoftFilterInfo(BaseModel):
    wanted_words: list[str]
    unwanted_words: list[str]
    wanted: list[AttributeValue]
    unwanted: list[AttributeValue]
    applied: bool
    floor: float
    text_weight: float
    negative_weight: float


class LocatedObject(BaseModel):
    """Where the query photo's main object was found (photo uploads, with ``explain``)."""

    box: tuple[int, int, int, int] = Field(description="left, top, right, bottom in pixels")
    source: Literal["background", "objectness", "full"] = Field(
        description="background: studio crop; objectness: learned box; full: whole photo"
    )


class SearchResponse(BaseModel):
    type: Literal["text", "image", "compose"]
    strategy: str = Field(description="how results were retrieved, e.g. hybrid, bm25, knn")
    took_ms: float
    hits: list[Hit]
    weights: HybridWeights | None = None
    category: CategoryInfo | None = None
    soft_filter: SoftFilterInfo | None = None
    located: LocatedObject | None = None
    notes: list[str] = Field(default_factory=list)
