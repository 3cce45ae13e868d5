"""``ketch scheduler``: run the scheduler process (see :mod:`control.scheduler.process`)."""

from __future__ import annotations

import argparse
from typing import Any

from .process import add_arguments, run

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "scheduler", help="run the scheduler (leader-elected with --leader-elect)")
    add_arguments(p)
    p.set_defaults(func=run)
