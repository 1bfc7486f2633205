"""Catalog readers: moved to :mod:`engine.catalog.readers` (the one reader of every command);
this module keeps the ingest import path."""

from engine.catalog.readers import (
    FORMATS,
    Format,
    Row,
    RowFailure,
    as_mapping,
    count_rows,
    detect_format,
    iter_rows,
    load_mapping,
    map_record,
    read_records,
    validate,
    validate_mapping,
    write_jsonl,
)

__all__ = [
    "FORMATS",
    "Format",
    "Row",
    "RowFailure",
    "as_mapping",
    "count_rows",
    "detect_format",
    "iter_rows",
    "load_mapping",
    "map_record",
    "read_records",
    "validate",
    "validate_mapping",
    "write_jsonl",
]
