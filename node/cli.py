"""``ketch node ...``: the same process as ``python -m node``."""

from __future__ import annotations

import argparse

from .__main__ import add_arguments, run

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("node", help="run a node agent",
                              description="Run a ketch node agent (kubelet + kube-proxy).")
    add_arguments(p)
    p.set_defaults(func=run)
