"""``python -m engine.cluster up | down | status | logs [--nodes N]`` — the local OpenSearch node,
or with ``--nodes 2..9`` a cluster of that many nodes on loopback (ports from
``OUTFIT_LOCAL_CLUSTER__HTTP_BASE_PORT``, default 9211, ...; engine.cluster.multi)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict

from engine.cluster.local import LocalNode
from engine.cluster.multi import LocalCluster
from engine.errors import ProvisionError
from engine.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "logs", "install"])
    parser.add_argument("--lines", type=int, default=40, help="log lines for 'logs'")
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        choices=range(1, 10),
        metavar="N",
        help="1 (default): the single node on port 9200; 2-9: a local cluster of N nodes",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    if settings.cluster.url and args.command in ("up", "install"):
        print(f"a cluster URL is configured ({settings.cluster.url}); nothing to provision")
        return 0
    if args.nodes > 1:
        return _cluster(settings, args.command, args.nodes, args.lines)
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


def _cluster(settings: Settings, command: str, nodes: int, lines: int) -> int:
    cluster = LocalCluster(settings.local_node, settings.local_cluster, nodes=nodes)
    try:
        if command == "install":
            cluster.members[0].install()
            print(f"installed at {cluster.members[0].install_dir}")
        elif command == "up":
            t0 = time.monotonic()
            st = cluster.up()
            out = {**st.to_json(), "seconds": round(time.monotonic() - t0, 1)}
            print(json.dumps(out, indent=2))
            print(f"use it with: export OUTFIT_CLUSTER__URL={cluster.url}")
        elif command == "down":
            stopped = cluster.down()
            print(f"stopped {', '.join(stopped)}" if stopped else "not running")
        elif command == "status":
            print(json.dumps(cluster.status().to_json(), indent=2))
        else:
            for m in cluster.members:
                print(f"=== {m.name} ===\n{m.log_tail(lines)}")
    except ProvisionError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for key, value in exc.details.items():
            print(f"--- {key} ---\n{value}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
