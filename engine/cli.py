"""One command-line style for every entry point (``python -m engine``, ``engine.cluster``,
``engine.config``, ``ingest``, ``engine.train ...``, ``evaluation ...``).

* :class:`CommandParser`: argparse with the shared logging flags, ``-v/--verbose`` (debug) and
  ``-q/--quiet`` (warnings and errors only), accepted before or after a subcommand;
* :func:`setup_logging`: one log format, the clients' chatty loggers quieted;
* :func:`fail`: a domain error printed as ``error: message`` (and its details) on stderr, exit
  status 1 — never a traceback for a problem the user can fix.

Each ``main(argv=None) -> int`` parses with a :class:`CommandParser`, calls
:func:`setup_logging`, builds settings with :func:`engine.settings.load_settings` and turns
:class:`engine.errors.EngineError` into :func:`fail`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from engine.errors import EngineError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# client libraries that log every request at INFO (the cluster clients every failed request at
# WARNING too, which our own error messages already say)
NOISY_LOGGERS = ("httpx", "urllib3")
CLUSTER_CLIENT_LOGGERS = ("opensearch", "elastic_transport", "elasticsearch")


def _add_log_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="warnings and errors only"
    )


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: the logging flags again, without defaults that would undo the
    same flag given before the subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        _add_log_flags(self, argparse.SUPPRESS)


class CommandParser(argparse.ArgumentParser):
    """The parser of an entry point: ``prog`` as the user types it, the module docstring as
    description, the shared logging flags; ``log_level`` is the level without flags."""

    def __init__(
        self, prog: str, description: str | None = None, *, log_level: int = logging.INFO
    ) -> None:
        super().__init__(
            prog=prog,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_log_flags(self, False)
        self.set_defaults(log_level=log_level)

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", _SubcommandParser)
        kwargs.setdefault("dest", "command")
        kwargs.setdefault("required", True)
        return super().add_subparsers(**kwargs)


def setup_logging(args: argparse.Namespace) -> None:
    """Logging for a command: debug with ``-v``, warnings with ``-q``, else the parser's level."""
    if getattr(args, "verbose", False):
        level = logging.DEBUG
    elif getattr(args, "quiet", False):
        level = logging.WARNING
    else:
        level = int(getattr(args, "log_level", logging.INFO))
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in CLUSTER_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(level if level == logging.DEBUG else logging.ERROR)
    # a pooled connection shared by threads makes urllib3 warn about a full pool at times
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def fail(exc: EngineError, *, as_json: bool = False) -> int:
    """Print a domain error for a person (or as one JSON object) on stderr; exit status 1."""
    if as_json:
        body = {"code": exc.code, "message": exc.message, "details": exc.details}
        print(json.dumps(body, default=str), file=sys.stderr)
        return 1
    print(f"error: {exc.message}", file=sys.stderr)
    for key, value in exc.details.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if "\n" in text:
            print(f"--- {key} ---\n{text}", file=sys.stderr)
        else:
            print(f"  {key}: {text}", file=sys.stderr)
    return 1
