"""The ``oarl`` command line. Each subcommand lives in its own module and registers a parser here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# name -> (module path, help). Modules are imported lazily so `oarl --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "score-demo": (
        "oarl.commands.score_demo",
        "score one random sequence with OAR-P / OAR-G on a tiny model",
    ),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    import importlib

    parser = argparse.ArgumentParser(
        prog="oarl", description="Outcome-grounded Advantage Reshaping for GRPO."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners = {}
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(
            name, help=help_text, description=(mod.__doc__ or help_text).strip().splitlines()[0]
        )
        mod.add_arguments(p)
        runners[name] = mod.run
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from oarl import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return int(runners[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
