"""Regenerate the repo's small real sample (``sample/``) from the shared catalog, reproducibly.

    python -m evaluation.make_sample [--source DIR] [--out sample] [--seed 13]

Selection (deterministic for a seed, independent of ``PYTHONHASHSEED`` and input order):

* only products with a photo in ``<source>/images``;
* a per-article-type quota (tops, bottoms, shoes, bags, watches, dresses ... enough for
  "complete the look" demos), plus one item of every other photographed article type;
* inside a type, about two products per colour from the largest colour groups (round-robin),
  so common types carry several colours, each more than once ("red dresses", "black shirts"
  and "this but in black" have answers);
  inside a colour, genders are interleaved and items with a ``style_note`` come first;
* ties are broken by ``sha1(f"{seed}:{id}")``.

Rows are copied verbatim (same fields as the shared catalog) in shared-catalog order; photos
are copied to ``<out>/images/<id>.jpg`` and re-encoded (JPEG quality 85) only when the copy
would exceed the size budget.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import math
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.catalog import image_path, is_test_id
from engine.cli import CommandParser, setup_logging
from engine.settings import load_settings

logger = logging.getLogger(__name__)

DEFAULT_SEED = 13
MAX_TOTAL_BYTES = 6 * 1024 * 1024

# article_type -> number of products in the sample (types not listed get OTHER_QUOTA).
QUOTAS: dict[str, int] = {
    # tops
    "Tshirts": 24,
    "Shirts": 20,
    "Tops": 14,
    "Kurtas": 8,
    "Sweaters": 6,
    "Sweatshirts": 6,
    "Jackets": 6,
    "Kurtis": 4,
    "Tunics": 3,
    # dresses
    "Dresses": 12,
    # bottoms
    "Jeans": 12,
    "Trousers": 12,
    "Shorts": 8,
    "Skirts": 8,
    "Track Pants": 4,
    "Leggings": 3,
    "Capris": 3,
    # shoes
    "Casual Shoes": 16,
    "Sports Shoes": 10,
    "Formal Shoes": 8,
    "Heels": 10,
    "Flats": 6,
    "Sandals": 6,
    "Flip Flops": 5,
    # bags
    "Handbags": 12,
    "Backpacks": 5,
    "Clutches": 5,
    # accessories
    "Watches": 12,
    "Sunglasses": 8,
    "Belts": 6,
    "Wallets": 5,
    "Caps": 4,
    "Ties": 4,
    "Socks": 3,
    "Scarves": 3,
    "Mufflers": 2,
}
OTHER_QUOTA = 1
PER_COLOUR = 2  # products per colour inside a type (before filling up)


def _tiebreak(seed: int, item_id: str) -> str:
    return hashlib.sha1(f"{seed}:{item_id}".encode()).hexdigest()


def _round_robin(groups: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def _order_type(rows: Sequence[dict[str, Any]], seed: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` products of one article type: about two per colour (largest colour groups
    first, so "black shirts" has more than one answer), genders interleaved."""
    by_colour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_colour[str(r.get("base_colour") or "")].append(r)
    colour_groups: list[list[dict[str, Any]]] = []
    for colour in sorted(by_colour, key=lambda c: (-len(by_colour[c]), c)):
        by_gender: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in by_colour[colour]:
            by_gender[str(r.get("gender") or "")].append(r)
        gender_groups = [
            sorted(
                by_gender[g],
                key=lambda r: (not r.get("style_note"), _tiebreak(seed, str(r["id"]))),
            )
            for g in sorted(by_gender, key=lambda g: (-len(by_gender[g]), g))
        ]
        colour_groups.append(_round_robin(gender_groups))
    n_colours = max(1, math.ceil(n / PER_COLOUR))
    ordered = _round_robin(colour_groups[:n_colours])
    if len(ordered) < n:  # few colours with enough items: fill from the remaining colours
        ordered += _round_robin(colour_groups[n_colours:])
    return ordered[:n]


def select_sample(
    rows: Iterable[dict[str, Any]],
    photographed: set[str],
    seed: int = DEFAULT_SEED,
    quotas: dict[str, int] | None = None,
    other_quota: int = OTHER_QUOTA,
) -> list[dict[str, Any]]:
    """Pick the sample rows (raw catalog dicts), returned in input order."""
    quotas = QUOTAS if quotas is None else quotas
    ordered_rows = [r for r in rows if str(r.get("id")) in photographed]
    position = {str(r["id"]): i for i, r in enumerate(ordered_rows)}
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ordered_rows:
        if r.get("article_type"):
            by_type[str(r["article_type"])].append(r)
    chosen: list[dict[str, Any]] = []
    for atype in sorted(by_type):
        n = quotas.get(atype, other_quota)
        chosen.extend(_order_type(by_type[atype], seed, n))
    chosen.sort(key=lambda r: position[str(r["id"])])
    return chosen


def _read_rows(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        return [json.loads(line) for line in fh if line.strip()]


def _reencode(src: Path, quality: int) -> bytes:
    from PIL import Image

    with Image.open(src) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
        return buf.getvalue()


def write_sample(
    source_dir: Path,
    out_dir: Path,
    seed: int = DEFAULT_SEED,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> dict[str, Any]:
    """Write ``out_dir/catalog.jsonl`` and ``out_dir/images/<id>.jpg``; return a summary."""
    src_images = source_dir / "images"
    photographed = {p.stem for p in src_images.glob("*.jpg")}
    rows = _read_rows(source_dir / "catalog.jsonl.gz")
    chosen = select_sample(rows, photographed, seed=seed)

    images_out = out_dir / "images"
    if images_out.exists():
        shutil.rmtree(images_out)
    images_out.mkdir(parents=True)
    with (out_dir / "catalog.jsonl").open("w", encoding="utf-8") as fh:
        for r in chosen:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")

    sources = [image_path(src_images, str(r["id"])) for r in chosen]
    raw_total = sum(p.stat().st_size for p in sources)
    reencode = raw_total > max_total_bytes
    total = 0
    for r, src in zip(chosen, sources, strict=True):
        dst = image_path(images_out, str(r["id"]))
        if reencode:
            dst.write_bytes(_reencode(src, quality=85))
        else:
            shutil.copyfile(src, dst)
        total += dst.stat().st_size
    summary = {
        "products": len(chosen),
        "article_types": len({r.get("article_type") for r in chosen}),
        "test_items": sum(is_test_id(str(r["id"])) for r in chosen),
        "with_style_note": sum(bool(r.get("style_note")) for r in chosen),
        "image_bytes": total,
        "reencoded": reencode,
        "seed": seed,
    }
    logger.info("sample written to %s: %s", out_dir, summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    settings = load_settings()
    parser = CommandParser("python -m evaluation.make_sample", __doc__)
    parser.add_argument("--source", type=Path, default=settings.shared_data)
    parser.add_argument("--out", type=Path, default=settings.sample_dir)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    setup_logging(args)
    summary = write_sample(args.source, args.out, seed=args.seed)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
