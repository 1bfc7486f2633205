"""``python -m engine.cluster up | down | status | logs`` — the local OpenSearch node."""

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
        "--secure",
        action="store_true",
        help="the secured node (security plugin: TLS, basic auth, users and roles; port 9221)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    if settings.cluster.url and args.command in ("up", "install") and not args.secure:
        print(f"a cluster URL is configured ({settings.cluster.url}); nothing to provision")
        return 0
    node: LocalNode
    if args.secure:
        from engine.cluster.secure import SecureNode

        node = SecureNode(settings.secure_node, settings.cluster.index_prefix)
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
            if args.secure:
                print(_secure_hint(node))
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
