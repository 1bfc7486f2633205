"""``python -m engine.cluster up | down | status | logs [--engine opensearch|elasticsearch]`` — the
local node (OpenSearch by default; ``--engine`` or ``OUTFIT_CLUSTER__ENGINE`` picks Elasticsearch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict

from engine.cluster.local import LocalNode
from engine.errors import ProvisionError
from engine.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "logs", "install"])
    parser.add_argument("--lines", type=int, default=40, help="log lines for 'logs'")
    parser.add_argument(
        "--engine",
        choices=["opensearch", "elasticsearch"],
        default=None,
        help="which local node (default: OUTFIT_CLUSTER__ENGINE, else opensearch)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    if settings.cluster.url and args.command in ("up", "install"):
        print(f"a cluster URL is configured ({settings.cluster.url}); nothing to provision")
        return 0
    engine = args.engine or settings.cluster.engine or "opensearch"
    node: LocalNode
    if engine == "elasticsearch":
        from engine.cluster.elasticsearch import ElasticsearchNode

        node = ElasticsearchNode(settings.elasticsearch_node)
    else:
        node = LocalNode(settings.local_node)
    try:
        if args.command == "install":
            t0 = time.monotonic()
            node.install()
            print(f"installed in {time.monotonic() - t0:.1f}s at {node.install_dir}")
        elif args.command == "up":
            t0 = time.monotonic()
            st = node.up()
            print(json.dumps({**asdict(st), "seconds": round(time.monotonic() - t0, 1)}, indent=2))
        elif args.command == "down":
            stopped = node.down()
            print("stopped" if stopped else "not running")
        elif args.command == "status":
            print(json.dumps(asdict(node.status()), indent=2))
        else:
            print(node.log_tail(args.lines))
    except ProvisionError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for key, value in exc.details.items():
            print(f"--- {key} ---\n{value}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
