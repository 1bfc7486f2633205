"""The look format (JSONL, one look a line) and its validation.

``{"look_id": "l1", "items": [{"item_id": "15970", "slot": "top"}, ...], "occasion": "Casual",
"season": "Summer", "gender": "Men", "scene_image_url": null, "source": "stylist"}``

Only ``look_id`` and ``items`` (at least one ``item_id``) are required; a missing ``slot`` is
filled in from the catalog when the look is ingested (:mod:`ingest.looks`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.catalog.readers import RowFailure, json_lines
from engine.errors import InvalidInput
from engine.looks.slots import validate_slot

OPTIONAL_FIELDS = ("occasion", "season", "gender", "scene_image_url", "source")


@dataclass(frozen=True)
class LookItem:
    item_id: str
    slot: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id}
        if self.slot is not None:
            out["slot"] = self.slot
        return out


@dataclass
class Look:
    look_id: str
    items: list[LookItem]
    occasion: str | None = None
    season: str | None = None
    gender: str | None = None
    scene_image_url: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "look_id": self.look_id,
            "items": [it.to_json() for it in self.items],
        }
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class LookError:
    """A line of a looks file that could not become a :class:`Look`."""

    line: int
    look_id: str | None
    reason: str


def _opt_str(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidInput(f"{name} must be a string", field=name)
    text = str(value).strip()
    return text or None


def parse_look(raw: Any) -> Look:
    """Validate one look object; :class:`InvalidInput` says what is wrong."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("a look must be a JSON object")
    look_id = raw.get("look_id")
    if isinstance(look_id, bool) or not isinstance(look_id, str | int) or not str(look_id).strip():
        raise InvalidInput("look_id must be a non-empty string", field="look_id")
    look_id = str(look_id).strip()
    items_raw = raw.get("items")
    if not isinstance(items_raw, list) or not items_raw:
        raise InvalidInput("items must be a non-empty list", field="items", look_id=look_id)
    items: list[LookItem] = []
    seen: set[str] = set()
    for i, it in enumerate(items_raw):
        if isinstance(it, str | int) and not isinstance(it, bool):
            it = {"item_id": it}
        if not isinstance(it, Mapping):
            raise InvalidInput(f"items[{i}] must be an object", look_id=look_id)
        iid = it.get("item_id")
        if isinstance(iid, bool) or not isinstance(iid, str | int) or not str(iid).strip():
            raise InvalidInput(f"items[{i}].item_id must be a non-empty string", look_id=look_id)
        iid = str(iid).strip()
        slot_raw = it.get("slot")
        slot: str | None = None
        if slot_raw is not None:
            if not isinstance(slot_raw, str):
                raise InvalidInput(f"items[{i}].slot must be a string", look_id=look_id)
            try:
                slot = validate_slot(slot_raw)
            except ValueError as exc:
                raise InvalidInput(f"items[{i}].slot: {exc}", look_id=look_id) from None
        if iid in seen:
            continue
        seen.add(iid)
        items.append(LookItem(iid, slot))
    extra = {
        k: v
        for k, v in raw.items()
        if k not in ("look_id", "items", *OPTIONAL_FIELDS) and isinstance(k, str)
    }
    return Look(
        look_id=look_id,
        items=items,
        extra=extra,
        **{name: _opt_str(raw, name) for name in OPTIONAL_FIELDS},
    )


def iter_looks_text(lines: Iterable[str]) -> Iterator[Look | LookError]:
    """Parse JSONL lines; every non-blank line yields a Look or a LookError (never raises)."""
    for lineno, raw in json_lines(lines):
        if isinstance(raw, RowFailure):
            yield LookError(lineno, None, raw.reason)
            continue
        rid = raw.get("look_id") if isinstance(raw, dict) else None
        try:
            yield parse_look(raw)
        except InvalidInput as exc:
            yield LookError(lineno, None if rid is None else str(rid), exc.message)


# Header names of a relational looks table's two columns (case-insensitive), first match wins.
_LOOK_ID_COLUMNS = ("look_id", "outfit_id", "cod_outfit", "outfit", "look")
_ITEM_ID_COLUMNS = ("item_id", "product_id", "cod_modelo_color", "item", "product", "id")


def iter_look_table(path: Path) -> Iterator[Look | LookError]:
    """A relational looks table (CSV/TSV, one row per look item: ``outfit_id,item_id``, e.g.
    Mango's ``outfit_data.csv``) as looks, in order of first appearance. The look id column is
    the first named like ``look_id``/``outfit_id`` (else the first column), the item column the
    first named like ``item_id``/``product_id`` (else the second)."""
    path = Path(path)
    with path.open("r", encoding="utf-8", newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if not header or len(header) < 2:
            yield LookError(1, None, "a looks table needs a header with two columns")
            return
        names = [h.strip().lower() for h in header]

        def pick(candidates: tuple[str, ...], fallback: int) -> int:
            for c in candidates:
                if c in names:
                    return names.index(c)
            return fallback

        li, ii = pick(_LOOK_ID_COLUMNS, 0), pick(_ITEM_ID_COLUMNS, 1)
        if li == ii:
            ii = 1 if li == 0 else 0
        looks: dict[str, list[str]] = {}
        for lineno, row in enumerate(reader, start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) <= max(li, ii):
                yield LookError(lineno, None, "row has fewer cells than the header")
                continue
            look_id, item_id = row[li].strip(), row[ii].strip()
            if not look_id or not item_id:
                yield LookError(lineno, look_id or None, "empty look id or item id")
                continue
            items = looks.setdefault(look_id, [])
            if item_id not in items:
                items.append(item_id)
    for look_id, items in looks.items():
        yield Look(look_id=look_id, items=[LookItem(i) for i in items])


def iter_looks(path: Path) -> Iterator[Look | LookError]:
    """Read a looks file: JSONL (one look a line), a JSON list of looks, or a relational
    CSV/TSV table ``look_id,item_id`` (:func:`iter_look_table`)."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        yield from iter_look_table(path)
        return
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield LookError(0, None, f"malformed JSON list: {exc.msg}")
            return
        for i, raw in enumerate(rows, start=1):
            rid = raw.get("look_id") if isinstance(raw, dict) else None
            try:
                yield parse_look(raw)
            except InvalidInput as exc:
                yield LookError(i, None if rid is None else str(rid), exc.message)
        return
    yield from iter_looks_text(text.splitlines())


def load_looks(path: Path) -> list[Look]:
    """The valid looks of a file (bad lines skipped; use :func:`iter_looks` to see them)."""
    return [lk for lk in iter_looks(path) if isinstance(lk, Look)]


def write_looks(looks: Iterable[Look], path: Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for look in looks:
            fh.write(json.dumps(look.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
