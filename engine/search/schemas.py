"""Typed request and response models of the search API (shared by the service and the router)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.hybrid import HybridWeights, normalise_relative
from engine.queries import Filters

MAX_SIZE = 100
MAX_TEXT = 512
MAX_VALUES = 50


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return v


class FilterSpec(BaseModel):
    """Hard filters. Each list matches any of its values (case-insensitive)."""

    model_config = ConfigDict(extra="forbid")

    gender: list[str] = Field(default_factory=list, max_length=MAX_VALUES, examples=[["Women"]])
    article_type: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    colour: list[str] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="matches the base colour or a secondary colour",
    )
    brand: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    in_stock: bool | None = Field(default=None, description="true: only items in stock")
    exclude_ids: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("gender", "article_type", "colour", "brand", "exclude_ids", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("gender", "article_type", "colour", "brand", "exclude_ids")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        out = []
        for s in v:
            s = s.strip()
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
    size: int = Field(default=20, ge=1, le=MAX_SIZE)
    explain: bool = Field(default=False, description="add a per-stage score breakdown per hit")


class TextSearchRequest(_Common):
    """Words -> products: BM25 + k-NN on the joint text vector (hybrid)."""

    query: str = Field(min_length=1, max_length=MAX_TEXT, examples=["red dresses"])
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    weights: HybridWeights | None = Field(
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
        if not v.strip():
            raise ValueError("query must not be blank")
        return v.strip()


class ImageOptions(_Common):
    """Options of an image search (the photo comes as an upload, a URL, base64 or an item id)."""

    category: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: predict the article type and restrict to it when confident",
    )
    coarse: bool | None = Field(
        default=None, description="Hamming coarse pass + exact re-rank (default: service option)"
    )


class ImageSource(BaseModel):
    """Exactly one of ``url``, ``base64`` or ``item_id`` (or a multipart upload)."""

    url: str | None = Field(default=None, max_length=2048)
    base64: str | None = Field(default=None, description="image bytes, base64 (data: URLs ok)")
    item_id: str | None = Field(default=None, max_length=256, description="a catalog product")

    def _check_one_source(self, upload: bool = False) -> None:
        given = [n for n in ("url", "base64", "item_id") if getattr(self, n)] + (
            ["upload"] if upload else []
        )
        if len(given) != 1:
            raise ValueError(
                "give exactly one image source: url, base64, item_id or a file upload"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.url is not None and not self.url.lower().startswith(("http://", "https://")):
            raise ValueError("url must be http:// or https://")


class ImageSearchRequest(ImageOptions, ImageSource):
    """JSON body of ``POST /search/image``."""

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
    wanted: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
    unwanted: list[str] = Field(default_factory=list, max_length=MAX_VALUES)
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
    """JSON body of ``POST /search/compose``."""

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
