"""The catalog ingest commands, re-exported from their modules: :mod:`ingest.products` (catalog
rows -> documents in the products index), :mod:`ingest.updates` (business fields) and
:mod:`ingest.deletes`; :mod:`ingest.runner` holds what they share.
"""

from ingest.deletes import delete_products, read_ids
from ingest.product_stages import PipelineOptions, plain_update
from ingest.products import default_failures_path, ingest_products
from ingest.updates import BusinessUpdate, update_products

__all__ = [
    "BusinessUpdate",
    "PipelineOptions",
    "default_failures_path",
    "delete_products",
    "ingest_products",
    "plain_update",
    "read_ids",
    "update_products",
]
