"""Catalog ingest: ``python -m ingest products|update|delete`` and the library functions."""

from ingest.pipeline import (
    PipelineOptions,
    delete_products,
    ingest_products,
    update_products,
)
from ingest.report import Failure, IngestReport

__all__ = [
    "Failure",
    "IngestReport",
    "PipelineOptions",
    "delete_products",
    "ingest_products",
    "update_products",
]
