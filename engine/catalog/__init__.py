"""The catalog vocabulary: the product model and split, placeholder values, the taxonomy
(outfit slots), retailer mappings and the tolerant readers.

``from engine.catalog import Product, is_test_id, load_catalog`` keeps working: the product
model lives in :mod:`engine.catalog.product`.
"""

from engine.catalog.mapping import CatalogMapping, load_catalog_mapping
from engine.catalog.product import KEYWORD_FIELDS, Product, RowError, image_path, is_test_id
from engine.catalog.readers import iter_catalog, iter_rows, load_catalog, read_products

__all__ = [
    "KEYWORD_FIELDS",
    "CatalogMapping",
    "iter_rows",
    "load_catalog_mapping",
    "read_products",
    "Product",
    "RowError",
    "image_path",
    "is_test_id",
    "iter_catalog",
    "load_catalog",
]
