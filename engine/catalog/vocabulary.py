"""Values that mean "no value", and the one function that applies them.

Catalogs write a missing value in many ways: an empty cell, ``NA``, ``N/A``, ``-``, ``null``,
``None``, ``nan``. Every reader, the product model and the taxonomy treat these the same way,
through :func:`is_placeholder` / :func:`clean_value`. A retailer adds its own placeholders in
the mapping file (``placeholders = ["n.d."]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# Compared case-insensitively after stripping whitespace.
PLACEHOLDERS: frozenset[str] = frozenset(
    {"", "na", "n/a", "n.a.", "-", "--", "null", "none", "nan"}
)


def is_placeholder(value: Any, extra: Iterable[str] = ()) -> bool:
    """True for None, NaN and strings that only say "no value"."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        text = value.strip().lower()
        return text in PLACEHOLDERS or text in {e.strip().lower() for e in extra}
    return False


def clean_value(value: Any, extra: Iterable[str] = ()) -> Any:
    """``None`` for a placeholder, the value (strings stripped) otherwise."""
    if is_placeholder(value, extra):
        return None
    return value.strip() if isinstance(value, str) else value
