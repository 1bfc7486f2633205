"""Catalog readers: JSONL (optionally gzipped), CSV and Parquet, with a field mapping.

Every data row becomes a :class:`Row` holding either a validated
:class:`~engine.catalog.Product` or a :class:`RowFailure` (malformed JSON, missing title, wrong
types, a duplicate id within the file). Rows are numbered in file order (``seq``, 0-based, the
unit of checkpoints) and carry their physical ``line`` (JSONL/CSV line, Parquet row number).

A mapping is a :class:`~engine.catalog.mapping.CatalogMapping` (a retailer's mapping file) or the
older flat ``{our field: their column}``; fields it does not name are read from the column of
the same name, so our own catalog format needs no mapping. Placeholder cells ("", "NA", "-",
...: :mod:`engine.catalog.vocabulary`) are missing values.

This is the one catalog reader: ingest, fit, evaluation and :func:`engine.catalog.load_catalog`
all read through :func:`iter_rows`.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from engine.catalog.mapping import COLUMN_FIELDS, CatalogMapping, TextSpec
from engine.catalog.product import Product, RowError
from engine.catalog.vocabulary import is_placeholder
from engine.errors import InvalidInput

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")

# Fields a mapping may name (besides "attributes.<Name>").
PRODUCT_FIELDS: tuple[str, ...] = tuple(Product.model_fields)


@dataclass(frozen=True)
class RowFailure:
    """Why a row could not become a product."""

    code: str  # malformed_json | not_an_object | missing_id | missing_title | invalid_field | duplicate_id
    reason: str
    item_id: str | None = None


@dataclass(frozen=True)
class Row:
    seq: int
    line: int
    product: Product | None = None
    failure: RowFailure | None = None
    raw: Mapping[str, Any] | None = None  # the mapped record (used by business updates)

    @property
    def item_id(self) -> str | None:
        if self.product is not None:
            return self.product.id
        return self.failure.item_id if self.failure else None


def detect_format(path: Path) -> Format:
    """From the file name: .jsonl/.json/.ndjson(.gz) -> jsonl, .csv(.gz) -> csv, .parquet."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise InvalidInput(
        f"cannot tell the catalog format of {path}; pass --format jsonl|csv|parquet",
        path=str(path),
    )


MappingLike = CatalogMapping | Mapping[str, str] | None


def as_mapping(mapping: MappingLike) -> CatalogMapping:
    """A CatalogMapping from either form (None -> our own format, as the ``myntra`` preset
    says: same column names, a row without a title is reported, never given a composed one)."""
    if mapping is None:
        return CatalogMapping(text=TextSpec(compose_title="never"))
    if isinstance(mapping, CatalogMapping):
        return mapping
    return CatalogMapping.from_flat(validate_mapping(dict(mapping)))


def load_mapping(path: Path | None) -> dict[str, str]:
    """Read an older flat mapping file (JSON ``{our field: their column}``) and check its keys
    (:func:`engine.catalog.mapping.load_catalog_mapping` reads every mapping format)."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read mapping file {path}: {exc}", path=str(path)) from exc
    return validate_mapping(data)


def validate_mapping(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InvalidInput("a field mapping must be a JSON object of strings {field: column}")
    unknown = [
        k
        for k in data
        if k not in PRODUCT_FIELDS and not (k.startswith("attributes.") and len(k) > 11)
    ]
    if unknown:
        raise InvalidInput(
            f"unknown field(s) in mapping: {', '.join(sorted(unknown))}",
            unknown=sorted(unknown),
            known=list(PRODUCT_FIELDS),
        )
    return dict(data)


# ---------------------------------------------------------------------------- value helpers
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _split_list(v: str) -> list[str]:
    text = v.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            return [str(x).strip() for x in data if str(x).strip()]
    return [p.strip() for p in re.split(r"[|;\n,]", text) if p.strip()]


def _normalise(field: str, v: Any, from_text: bool, placeholders: Iterable[str] = ()) -> Any:
    """Bring a cell into the shape Product expects (CSV strings, Parquet types)."""
    if _is_missing(v):
        return None
    if (
        isinstance(v, str)
        and field not in ("attributes", "image_urls")
        and is_placeholder(v, placeholders)
    ):
        return None
    if from_text and isinstance(v, str):
        if field == "attributes":
            text = v.strip()
            if not text:
                return None
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return v  # Product rejects it: "attributes must be an object"
        if field == "image_urls":
            return _split_list(v)
        if not v.strip():
            return None
    if field == "image_urls":
        if isinstance(v, str):
            return _split_list(v)
        if isinstance(v, list | tuple):
            return [str(x) for x in v if not _is_missing(x) and str(x).strip()]
    if field == "attributes" and isinstance(v, list):
        # Parquet map<string,string> comes back as a list of (key, value) pairs.
        try:
            return {str(k): val for k, val in v}
        except (TypeError, ValueError):
            return v
    if field == "added_at" and isinstance(v, datetime):
        return int(v.timestamp())
    if field == "added_at" and isinstance(v, date):
        return int(datetime(v.year, v.month, v.day).timestamp())
    if isinstance(v, dict) and field == "attributes":
        return {k: val for k, val in v.items() if not _is_missing(val)}
    return v


def _basename(ref: str) -> str:
    if ref.lower().startswith(("http://", "https://")):
        return ref
    return re.split(r"[\\/]", ref)[-1]


def map_record(
    record: Mapping[str, Any], mapping: MappingLike, *, from_text: bool = False
) -> dict[str, Any]:
    """Our field name -> value for one source record (fields missing or empty are left out)."""
    m = as_mapping(mapping)
    extra = m.placeholders
    out: dict[str, Any] = {}
    for field in (*COLUMN_FIELDS, "attributes"):
        column = m.column(field)
        if column in record:
            value = _normalise(field, record[column], from_text, extra)
            if value is not None:  # missing: the field's default
                out[field] = m.map_value(field, value)
    urls: list[str] = []
    for column in m.images.columns:
        if column in record:
            refs = _normalise("image_urls", record[column], from_text) or []
            for ref in refs:
                ref = _basename(ref) if m.images.basename else ref
                if ref and not is_placeholder(ref, extra) and ref not in urls:
                    urls.append(ref)
    if urls:
        out["image_urls"] = urls
    extra_attrs: dict[str, Any] = {}
    for name, column in m.attribute_columns.items():
        if column in record:
            value = record[column]
            if not _is_missing(value) and not is_placeholder(str(value), extra):
                extra_attrs[name] = str(value).strip()
    if extra_attrs:
        base = out.get("attributes")
        merged = dict(base) if isinstance(base, dict) else {}
        merged.update(extra_attrs)
        out["attributes"] = merged
    mode = m.text.compose_title
    if mode == "always" or (mode == "when_missing" and is_placeholder(out.get("title"), extra)):
        title = m.compose_title(out)
        if title:
            out["title"] = title
    return out


def _item_id(record: Mapping[str, Any]) -> str | None:
    v = record.get("id")
    if _is_missing(v) or isinstance(v, bool):
        return None
    s = str(v).strip()
    return s or None


def validate(record: Mapping[str, Any]) -> Product | RowFailure:
    """A mapped record -> Product, or the first validation problem as a RowFailure."""
    rid = _item_id(record)
    if rid is None:
        return RowFailure("missing_id", "id: missing or empty", None)
    title = record.get("title")
    if is_placeholder(title):
        return RowFailure("missing_title", "title: missing or empty", rid)
    try:
        return Product.model_validate(record)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "row"
        return RowFailure("invalid_field", f"{loc}: {first['msg']}", rid)


# ---------------------------------------------------------------------------- raw sources
def _open_text(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON value or :class:`RowFailure`) for every non-blank line: the
    one JSONL parser (catalogs, looks files, click and judgment logs)."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, RowFailure("malformed_json", f"malformed JSON: {exc.msg}")


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowFailure]]:
    with _open_text(path) as fh:
        for lineno, raw in json_lines(fh):
            if isinstance(raw, RowFailure):
                yield lineno, raw
            elif not isinstance(raw, dict):
                yield lineno, RowFailure("not_an_object", "row is not a JSON object")
            else:
                yield lineno, raw


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowFailure]]:
    with _open_text(path) as fh:
        sample = fh.read(8192)
        fh.seek(0)
        name = path.name.lower().removesuffix(".gz")
        delimiter = "\t" if name.endswith(".tsv") else ","
        if delimiter == "," and sample.count("\t") > sample.count(","):
            delimiter = "\t"
        reader = csv.DictReader(fh, delimiter=delimiter)
        start = 2
        try:
            for record in reader:
                line = start
                start = reader.line_num + 1
                if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
                    continue
                if None in record:  # more cells than header columns
                    yield line, RowFailure("invalid_field", "row has more cells than the header")
                    continue
                yield line, dict(record)
        except csv.Error as exc:
            yield start, RowFailure("malformed_csv", f"malformed CSV: {exc}")


def _parquet_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowFailure]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise InvalidInput(f"cannot read Parquet file {path}: {exc}", path=str(path)) from exc
    row = 0
    for batch in pf.iter_batches(batch_size=2048):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def count_rows(path: Path, fmt: Format | None = None) -> int | None:
    """Number of data rows (for progress bars); None when unknown or expensive."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with _open_text(path) as fh:
            n = sum(1 for line in fh if line.strip())
        return n - 1 if fmt == "csv" else n
    except Exception:  # noqa: BLE001 - only a progress hint
        return None


def read_records(
    path: Path, fmt: Format | None = None
) -> Iterator[tuple[int, dict[str, Any] | RowFailure]]:
    """(line, raw record or failure) for every data row of a catalog file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"catalog file not found: {path}", path=str(path))
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        return _jsonl_records(path)
    if fmt == "csv":
        return _csv_records(path)
    if fmt == "parquet":
        return _parquet_records(path)
    raise InvalidInput(f"unknown catalog format {fmt!r}", known=list(FORMATS))


def iter_rows(
    path: Path,
    fmt: Format | None = None,
    mapping: MappingLike = None,
) -> Iterator[Row]:
    """Every data row as a validated :class:`Row`; duplicate ids become failures."""
    path = Path(path)
    mapping = as_mapping(mapping)
    fmt = fmt or mapping.format or detect_format(path)
    from_text = fmt == "csv"
    seen: set[str] = set()
    for seq, (line, rec) in enumerate(read_records(path, fmt)):
        if isinstance(rec, RowFailure):
            yield Row(seq, line, failure=rec)
            continue
        record = map_record(rec, mapping, from_text=from_text)
        result = validate(record)
        if isinstance(result, RowFailure):
            yield Row(seq, line, failure=result, raw=record)
            continue
        pid = result.id
        if pid in seen:
            yield Row(seq, line, failure=RowFailure("duplicate_id", "duplicate id", pid))
            continue
        seen.add(pid)
        yield Row(seq, line, product=result, raw=record)


def read_products(
    path: Path, mapping: MappingLike = None, fmt: Format | None = None
) -> tuple[list[Product], list[Row]]:
    """All valid products of a catalog file and the rows that failed."""
    products: list[Product] = []
    failed: list[Row] = []
    for row in iter_rows(path, fmt, mapping):
        if row.product is not None:
            products.append(row.product)
        else:
            failed.append(row)
    return products, failed


def iter_catalog(path: Path, mapping: MappingLike = None) -> Iterator[Product | RowError]:
    """A Product or a RowError for every data row; never raises on bad rows."""
    for row in iter_rows(path, None, mapping):
        if row.product is not None:
            yield row.product
        else:
            failure = row.failure
            assert failure is not None
            yield RowError(row.line, failure.item_id, failure.reason)


def load_catalog(path: Path, mapping: MappingLike = None) -> list[Product]:
    """All valid products of a catalog (bad rows are skipped; use iter_rows to see them)."""
    return read_products(path, mapping)[0]


def write_jsonl(records: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write records as JSONL (a helper for tests and benchmarks)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
