"""``python -m control.scheduler --kubeconfig F [--leader-elect] [--metrics-port P]``."""

from __future__ import annotations

import sys

from .process import main

sys.exit(main())
