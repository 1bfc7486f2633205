"""``python -m engine.cluster up | down | status | logs | install [--nodes N | --secure]`` — the
local OpenSearch node; with ``--nodes 2..9`` a cluster of that many nodes on loopback (ports from
``OUTFIT_LOCAL_CLUSTER__HTTP_BASE_PORT``, default 9211, ...; engine.cluster.multi); with
``--secure`` the secured node (security plugin: TLS, basic auth, users and roles; port 9221;
engine.cluster.secure); with ``--engine elasticsearch`` (or ``OUTFIT_CLUSTER__ENGINE``) the local
Elasticsearch node (port 9250; engine.cluster.elasticsearch)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict

from engine.cli import CommandParser, fail, setup_logging
from engine.cluster.local import LocalNode
from engine.cluster.multi import LocalCluster
from engine.errors import ProvisionError
from engine.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m engine.cluster", __doc__)
    parser.add_argument("command", choices=["up", "down", "status", "logs", "install"])
    parser.add_argument("--lines", type=int, default=40, help="log lines for 'logs'")
    parser.add_argument(
        "--engine",
        choices=["opensearch", "elasticsearch"],
        default=None,
        help="which local node (default: OUTFIT_CLUSTER__ENGINE, else opensearch)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--secure",
        action="store_true",
        help="the secured node (security plugin: TLS, basic auth, users and roles; port 9221)",
    )
    which.add_argument(
        "--nodes",
        type=int,
        default=1,
        choices=range(1, 10),
        metavar="N",
        help="1 (default): the single node on port 9200; 2-9: a local cluster of N nodes",
    )
    args = parser.parse_args(argv)
    setup_logging(args)
    settings = load_settings()
    if settings.cluster.url and args.command in ("up", "install") and not args.secure:
        print(f"a cluster URL is configured ({settings.cluster.url}); nothing to provision")
        return 0
    engine = args.engine or settings.cluster.engine or "opensearch"
    if engine == "elasticsearch" and (args.secure or args.nodes > 1):
        parser.error("--secure and --nodes are OpenSearch nodes: not with --engine elasticsearch")
    try:
        if args.nodes > 1:
            return _cluster(settings, args.command, args.nodes, args.lines)
        return _node(settings, args.command, args.lines, secure=args.secure, engine=engine)
    except ProvisionError as exc:
        return fail(exc)


def _node(settings: Settings, command: str, lines: int, *, secure: bool, engine: str) -> int:
    node: LocalNode
    if engine == "elasticsearch":
        from engine.cluster.elasticsearch import ElasticsearchNode

        node = ElasticsearchNode(settings.elasticsearch_node)
    elif secure:
        from engine.cluster.secure import SecureNode

        node = SecureNode(settings.secure_node, settings.cluster.index_prefix)
    else:
        node = LocalNode(settings.local_node)
    if command == "install":
        t0 = time.monotonic()
        node.install()
        print(f"installed in {time.monotonic() - t0:.1f}s at {node.install_dir}")
    elif command == "up":
        t0 = time.monotonic()
        st = node.up()
        print(json.dumps({**asdict(st), "seconds": round(time.monotonic() - t0, 1)}, indent=2))
        if secure:
            print(_secure_hint(node))
    elif command == "down":
        print("stopped" if node.down() else "not running")
    elif command == "status":
        print(json.dumps(asdict(node.status()), indent=2))
    else:
        print(node.log_tail(lines))
    return 0


def _cluster(settings: Settings, command: str, nodes: int, lines: int) -> int:
    cluster = LocalCluster(settings.local_node, settings.local_cluster, nodes=nodes)
    if command == "install":
        cluster.members[0].install()
        print(f"installed at {cluster.members[0].install_dir}")
    elif command == "up":
        t0 = time.monotonic()
        st = cluster.up()
        print(json.dumps({**st.to_json(), "seconds": round(time.monotonic() - t0, 1)}, indent=2))
        print(f"use it with: export OUTFIT_CLUSTER__URL={cluster.url}")
    elif command == "down":
        stopped = cluster.down()
        print(f"stopped {', '.join(stopped)}" if stopped else "not running")
    elif command == "status":
        print(json.dumps(cluster.status().to_json(), indent=2))
    else:
        for m in cluster.members:
            print(f"=== {m.name} ===\n{m.log_tail(lines)}")
    return 0


def _secure_hint(node: LocalNode) -> str:
    from engine.cluster.secure import USERS, SecureNode

    assert isinstance(node, SecureNode)
    files = "\n".join(f"  {user}: {node.env_file(user)}" for user in USERS)
    return (
        f"CA certificate: {node.pki.ca_cert}\n"
        f"settings per user (0600; passwords are in them, never printed):\n{files}\n"
        f"use one with: set -a; . {node.env_file('outfit-api')}; set +a"
    )


if __name__ == "__main__":
    sys.exit(main())
