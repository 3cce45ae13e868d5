"""``ketch controller-manager ...``: the same process as ``python -m control.controllers``."""

from __future__ import annotations

import argparse

from .__main__ import add_arguments, run

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("controller-manager", help="run the controller-manager",
                              description="Run ketch's controller-manager.")
    add_arguments(p)
    p.set_defaults(func=run)
