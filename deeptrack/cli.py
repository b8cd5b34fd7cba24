"""The ``deeptrack`` command line: argparse -> config -> library calls."""

from __future__ import annotations

import argparse
import sys

from deeptrack import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``deeptrack`` command."""
    parser = argparse.ArgumentParser(
        prog="deeptrack",
        description="Appearance-aware multi-object tracking with selectable RoI pooling.",
    )
    parser.add_argument("--version", action="version", version=f"deeptrack {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
