"""The one command-line style: shared logging flags before or after a subcommand, domain
errors printed for a person."""

from __future__ import annotations

import logging

import pytest

from engine.cli import CommandParser, fail, setup_logging
from engine.errors import InvalidInput


def _parser() -> CommandParser:
    parser = CommandParser("prog", "doc", log_level=logging.WARNING)
    sub = parser.add_subparsers()
    run = sub.add_parser("run")
    run.add_argument("--n", type=int, default=1)
    return parser


@pytest.mark.parametrize(
    ("argv", "verbose", "quiet"),
    [
        (["run"], False, False),
        (["-v", "run"], True, False),
        (["run", "-v"], True, False),
        (["-q", "run", "--n", "2"], False, True),
        (["run", "--quiet"], False, True),
    ],
)
def test_logging_flags_before_or_after_the_subcommand(
    argv: list[str], verbose: bool, quiet: bool
) -> None:
    args = _parser().parse_args(argv)
    assert (args.command, args.verbose, args.quiet) == ("run", verbose, quiet)


def test_setup_logging_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    levels = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: levels.append(kw["level"]))
    for argv in (["run"], ["-v", "run"], ["run", "-q"]):
        setup_logging(_parser().parse_args(argv))
    assert levels == [logging.WARNING, logging.DEBUG, logging.WARNING]
    assert logging.getLogger("opensearch").level == logging.ERROR


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([])
    assert exc.value.code == 2


def test_fail_prints_message_and_details(capsys: pytest.CaptureFixture[str]) -> None:
    code = fail(InvalidInput("bad size", size=7, log="line 1\nline 2"))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: bad size\n")
    assert "  size: 7" in err and "--- log ---\nline 1\nline 2" in err
    fail(InvalidInput("bad size", size=7), as_json=True)
    assert '"code": "invalid_input"' in capsys.readouterr().err
