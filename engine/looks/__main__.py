"""``python -m engine.looks mine --catalog FILE --out looks.jsonl [--seed N] [--any-split]``:
write the development looks mined from a catalog's style notes (see docs/LOOKS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.catalog import load_catalog
from engine.cli import CommandParser, setup_logging
from engine.looks.format import write_looks


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m engine.looks", __doc__)
    sub = parser.add_subparsers()
    mine = sub.add_parser("mine", help="mine looks from style notes")
    mine.add_argument("--catalog", type=Path, required=True)
    mine.add_argument("--out", type=Path, required=True)
    mine.add_argument("--seed", type=int, default=0)
    mine.add_argument(
        "--any-split",
        action="store_true",
        help="partners from either split (default: the anchor's split, for evaluation)",
    )
    args = parser.parse_args(argv)
    # offline (look mining is training data, engine.train): imported only for the command
    from engine.train.datagen.looks_mining import MiningStats, build_looks

    setup_logging(args)
    if not args.catalog.is_file():
        print(f"no such catalog: {args.catalog}", file=sys.stderr)
        return 1
    stats = MiningStats()
    looks = build_looks(
        load_catalog(args.catalog), seed=args.seed, same_split=not args.any_split, stats=stats
    )
    n = write_looks(looks, args.out)
    print(json.dumps({"written": n, "out": str(args.out), **stats.as_dict()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
