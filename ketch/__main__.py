"""``python -m ketch``: the same as the ``ketch`` command."""

from __future__ import annotations

import sys

from ketch.cli import main

sys.exit(main())
