"""``ketch``: the one command line of the project; each component brings its own subcommands.

The parser is assembled here from the components' ``register(subparsers)`` functions
(``certs``, ``store``, and ``bench`` when that package is present), so this module holds no
component logic.  Every subcommand sets ``func`` (argparse namespace in, exit code out).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

# (module, required): an optional module that is absent is skipped; one that fails to import
# for any other reason is a bug and must be loud.
_COMPONENTS = (
    ("ketch.cluster_cli", True), ("certs.cli", True), ("store.cli", True), ("chaos.cli", True),
    ("ketch.bench.cli", False), ("control.controllers.cli", True), ("control.scheduler.cli", True),
    ("node.cli", True), ("ketch.fuzz.cli", True),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ketch",
        description="ketch: a small Kubernetes-style cluster manager on a Raft-replicated store.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, required in _COMPONENTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if required or e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ketch`` with ``argv`` (default: sys.argv[1:]); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
