"""Ingest looks (outfits) from JSONL into the looks index: ``python -m ingest.looks FILE``.

Every line is validated on its own (:func:`engine.looks.format.parse_look`); item ids are
checked against the products index. Unknown ids are reported per look and left out of the
look; a look left with fewer than ``min_items`` known items is skipped (and reported). A bad
line never fails the file. Each indexed item carries its product's slot, article type, colour
and vector (``joint_embedding``, else ``image_embedding``, else ``text_embedding``) so looks can
be searched by item similarity (nested k-NN on ``items.embedding``).

Exit codes: 0 done (problems are in the JSON report), 1 bad input, 2 cluster unreachable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.backend import Backend
from engine.cli import CommandParser, fail, setup_logging
from engine.engines import connect
from engine.errors import ClusterUnavailable, EngineError
from engine.looks.format import Look, LookError, iter_looks, iter_looks_text
from engine.looks.store import PRODUCT_EXCLUDES, look_actions, look_document
from engine.settings import Settings, load_settings

logger = logging.getLogger(__name__)


@dataclass
class LooksIngestReport:
    """What happened to a looks file."""

    lines: int = 0
    indexed: int = 0
    skipped: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)  # unparseable lines
    unknown_ids: dict[str, list[str]] = field(default_factory=dict)  # look_id -> ids
    skipped_looks: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # rejected by the cluster

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "indexed": self.indexed,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "unknown_ids": self.unknown_ids,
            "unknown_id_count": sum(len(v) for v in self.unknown_ids.values()),
            "skipped_looks": self.skipped_looks,
            "failed": self.failed,
        }


def _batches(rows: Iterable[Look | LookError], size: int) -> Iterator[list[Look | LookError]]:
    batch: list[Look | LookError] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest_looks(
    backend: Backend,
    looks: Iterable[Look | LookError],
    *,
    products_index: str,
    looks_index: str,
    min_items: int = 2,
    batch_size: int = 500,
    refresh: bool = False,
) -> LooksIngestReport:
    """Validate looks against the products index and index them; never raises on bad looks
    (only :class:`~engine.errors.ClusterUnavailable` when the cluster goes away)."""
    report = LooksIngestReport()
    backend.ensure_index(looks_index)
    seen: set[str] = set()
    for batch in _batches(looks, batch_size):
        valid: list[Look] = []
        for row in batch:
            report.lines += 1
            if isinstance(row, LookError):
                report.invalid.append(
                    {"line": row.line, "look_id": row.look_id, "reason": row.reason}
                )
                report.skipped += 1
            elif row.look_id in seen:
                report.skipped += 1
                report.skipped_looks.append(
                    {"look_id": row.look_id, "reason": "duplicate look_id (first kept)"}
                )
            else:
                seen.add(row.look_id)
                valid.append(row)
        ids = sorted({i for lk in valid for i in lk.item_ids})
        products: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            products.update(
                backend.mget(
                    products_index, ids[start : start + 1000], source_excludes=PRODUCT_EXCLUDES
                )
            )
        docs = []
        for look in valid:
            unknown = [i for i in look.item_ids if i not in products]
            if unknown:
                report.unknown_ids[look.look_id] = unknown
            known = len(look.items) - len(unknown)
            if known < min_items:
                report.skipped += 1
                report.skipped_looks.append(
                    {
                        "look_id": look.look_id,
                        "reason": f"{known} known item(s), at least {min_items} needed",
                    }
                )
                continue
            docs.append(look_document(look, products))
        if docs:
            ok, errors = backend.bulk(look_actions(looks_index, docs), refresh=refresh)
            report.indexed += ok
            for err in errors:
                info = next(iter(err.values())) if err else {}
                report.failed.append(
                    {"look_id": info.get("_id"), "reason": str(info.get("error", err))[:500]}
                )
    if refresh:
        backend.refresh(looks_index)
    logger.info(
        "looks: %d lines, %d indexed, %d skipped, %d with unknown ids",
        report.lines,
        report.indexed,
        report.skipped,
        len(report.unknown_ids),
    )
    return report


def ingest_looks_file(
    backend: Backend, settings: Settings, path: Path, *, refresh: bool = True, **kwargs: Any
) -> LooksIngestReport:
    """:func:`ingest_looks` over a JSONL (or JSON list) file, into the configured indices."""
    return ingest_looks(
        backend,
        iter_looks(path),
        products_index=kwargs.pop("products_index", settings.cluster.products_index),
        looks_index=kwargs.pop("looks_index", settings.cluster.looks_index),
        refresh=refresh,
        **kwargs,
    )


def ingest_looks_lines(
    backend: Backend, lines: Iterable[str], *, products_index: str, looks_index: str, **kwargs: Any
) -> LooksIngestReport:
    """:func:`ingest_looks` over JSONL lines (e.g. an uploaded body)."""
    return ingest_looks(
        backend,
        iter_looks_text(lines),
        products_index=products_index,
        looks_index=looks_index,
        **kwargs,
    )


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The CLI's arguments (also used by ``python -m ingest looks``)."""
    parser.add_argument("looks", type=Path, help="looks JSONL (or a JSON list)")
    parser.add_argument("--products-index", default=None, help="default: <prefix>-products")
    parser.add_argument("--looks-index", default=None, help="default: <prefix>-looks")
    parser.add_argument("--min-items", type=int, default=2)
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    return parser


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(CommandParser("python -m ingest.looks", __doc__))


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    return run(build_parser().parse_args(argv), settings)


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Ingest ``args.looks`` (arguments of :func:`add_arguments`); the exit code."""
    setup_logging(args)
    settings = settings or load_settings()
    if not args.looks.is_file():
        print(f"no such file: {args.looks}", file=sys.stderr)
        return 1
    backend = connect(settings)
    try:
        report = ingest_looks(
            backend,
            iter_looks(args.looks),
            products_index=args.products_index or settings.cluster.products_index,
            looks_index=args.looks_index or settings.cluster.looks_index,
            min_items=args.min_items,
            refresh=True,
        )
    except ClusterUnavailable as exc:
        print(f"cluster unavailable: {exc.message}", file=sys.stderr)
        return 2
    except EngineError as exc:
        return fail(exc)
    text = json.dumps(report.to_json(), indent=2)
    if args.report is not None:
        args.report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
