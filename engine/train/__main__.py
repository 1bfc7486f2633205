"""``python -m engine.train <command>``: training entry points (``joint``, ``colour``, ``looks``, ``ltr``, ``shopper``, ``static-text``).

``looks`` and ``ltr`` are also runnable as ``python -m engine.train.looks`` and
``python -m engine.train.ltr``; the arguments after the command go to that module's CLI.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module with main(argv) -> int, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "joint": ("engine.train.joint", "joint image-text model (engine/models/weights/joint.pt)"),
    "colour": (
        "engine.train.colour",
        "colour head over photo inputs, added to engine/models/weights/joint.pt",
    ),
    "looks": (
        "engine.train.looks",
        "complete-the-look compatibility model (engine/models/weights/compat.pt)",
    ),
    "ltr": ("engine.train.ltr", "GBDT+LR search re-ranker (engine/ltr/weights/)"),
    "shopper": (
        "engine.train.shopper",
        "shopper-photo localiser + query image tower (engine/models/weights/shopper.pt)",
    ),
    "static-text": (
        "engine.train.static_text",
        "static document text encoder distilled from MiniLM (engine/models/weights/text_static.pt)",
    ),
}

USAGE = (
    "usage: python -m engine.train {joint,colour,looks,ltr,shopper,static-text} [--help] [options]\n\ncommands:\n"
    + "".join(f"  {name:<12}{desc}\n" for name, (_, desc) in COMMANDS.items())
    + "\n`python -m engine.train COMMAND --help` lists a command's options."
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
